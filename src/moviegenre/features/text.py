"""Plot features: TF-IDF (RandomForest), counts (dense NN) and token ids (LSTM).

``PlotFeaturizer`` holds the three fitted transformers; the featurize_text stage and
``moviegenre predict`` both go through its ``transform``. All three are fitted on the text
branches' training movies (train split, with plot-only movies) and applied to every movie;
rows follow the prepared table (``index.csv``). Sparse matrices stay sparse (CSR, float32).

The vectorisers are saved as JSON (settings, terms in column order, idf weights) rather
than pickled: scikit-learn's pickle carries a memory address (``_stop_words_id``), so two
identical fits would give different bytes and DVC would retrain both text branches.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

from moviegenre.core.errors import MovieGenreError
from moviegenre.core.files import atomic_dir, json_text
from moviegenre.features.store import INDEX, write_arrays
from moviegenre.features.tokenizer import Tokenizer

log = logging.getLogger(__name__)

FEATURE_SET = "text"
TFIDF_MODEL, COUNTS_MODEL, TOKENIZER = "tfidf.json", "counts.json", "tokenizer.json"
STATE_FILES = {"tfidf": (TFIDF_MODEL,), "counts": (COUNTS_MODEL,), "sequences": (TOKENIZER,)}


def make_tfidf(settings: dict) -> TfidfVectorizer:
    return TfidfVectorizer(
        ngram_range=(1, settings["ngram_max"]),
        min_df=settings["min_df"],
        max_df=settings["max_df"],
        max_features=settings["max_features"],
        sublinear_tf=settings["sublinear_tf"],
        stop_words=settings["stop_words"],
        dtype=np.float32,
    )


def make_counts(settings: dict) -> CountVectorizer:
    return CountVectorizer(
        ngram_range=(1, settings["ngram_max"]),
        min_df=settings["min_df"],
        max_features=settings["max_features"],
        stop_words=settings["stop_words"],
        dtype=np.float32,
    )


def vectoriser_state(vectoriser: CountVectorizer, settings: dict) -> dict[str, Any]:
    """What a fitted vectoriser needs to transform again: settings, terms by column, idf."""
    terms = [""] * len(vectoriser.vocabulary_)
    for term, column in vectoriser.vocabulary_.items():
        terms[column] = term
    state: dict[str, Any] = {"settings": settings, "terms": terms}
    if isinstance(vectoriser, TfidfVectorizer):
        state["idf"] = [float(v) for v in vectoriser.idf_]
    return state


def vectoriser_from_state(state: dict[str, Any]) -> CountVectorizer:
    """Rebuild a fitted vectoriser; it transforms exactly as the one that was saved."""
    settings = state["settings"]
    vectoriser = make_tfidf(settings) if "idf" in state else make_counts(settings)
    vectoriser.vocabulary_ = {term: column for column, term in enumerate(state["terms"])}
    if "idf" in state:
        vectoriser.idf_ = np.asarray(state["idf"], dtype=np.float64)
    return vectoriser


class PlotFeaturizer:
    """TF-IDF and count vectorisers and the tokenizer, fitted on the text training plots."""

    def __init__(self, settings: dict, tfidf: TfidfVectorizer, counts: CountVectorizer, tokenizer: Tokenizer) -> None:
        self.settings, self.tfidf, self.counts, self.tokenizer = settings, tfidf, counts, tokenizer

    @classmethod
    def fit(cls, train_plots: pd.Series, settings: dict) -> PlotFeaturizer:
        sequences = settings["sequences"]
        return cls(
            settings,
            make_tfidf(settings["tfidf"]).fit(train_plots),
            make_counts(settings["counts"]).fit(train_plots),
            Tokenizer(sequences["vocab_size"], sequences["length"]).fit(train_plots),
        )

    def transform(self, plots: list[str] | pd.Series) -> dict[str, Any]:
        return {
            "tfidf": self.tfidf.transform(plots).tocsr(),
            "counts": self.counts.transform(plots).tocsr(),
            "sequences": self.tokenizer.transform(plots),
        }

    def save(self, directory: Path) -> None:
        (directory / TFIDF_MODEL).write_text(json_text(vectoriser_state(self.tfidf, self.settings["tfidf"])))
        (directory / COUNTS_MODEL).write_text(json_text(vectoriser_state(self.counts, self.settings["counts"])))
        self.tokenizer.save(directory / TOKENIZER)

    @classmethod
    def load(cls, directory: Path) -> PlotFeaturizer:
        for name in STATE_FILES:
            path = directory / STATE_FILES[name][0]
            if not path.is_file():
                raise MovieGenreError(f"{path}: not found (run `dvc repro featurize_text`)")
        tfidf_state = json.loads((directory / TFIDF_MODEL).read_text())
        counts_state = json.loads((directory / COUNTS_MODEL).read_text())
        tokenizer = Tokenizer.load(directory / TOKENIZER)
        settings = {
            "tfidf": tfidf_state["settings"],
            "counts": counts_state["settings"],
            "sequences": {"vocab_size": tokenizer.vocab_size, "length": tokenizer.length},
        }
        return cls(settings, vectoriser_from_state(tfidf_state), vectoriser_from_state(counts_state), tokenizer)


def featurize_text(table: pd.DataFrame, settings: dict, out_dir: Path) -> dict:
    """Fit on train plots, transform all plots, write every matrix and the fitted state."""
    train = (table["split"] == "train").to_numpy()
    if not train.any():
        raise MovieGenreError("no training movies in the prepared table")
    featurizer = PlotFeaturizer.fit(table.loc[train, "plot"], settings)
    arrays = featurizer.transform(table["plot"])
    with atomic_dir(out_dir) as tmp:
        table[["id", "split"]].to_csv(tmp / INDEX, index=False)
        write_arrays(tmp, arrays)
        featurizer.save(tmp)
    shapes = {name: array.shape for name, array in arrays.items()}
    log.info("text features: %s", shapes)
    return shapes
