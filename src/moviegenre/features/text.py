"""Plot features: TF-IDF (RandomForest), counts (dense NN) and token ids (LSTM).

``PlotFeaturizer`` holds the three fitted transformers; the featurize_text stage and
``moviegenre predict`` both go through its ``transform``. All three are fitted on the text
branches' training movies (train split, with plot-only movies) and applied to every movie;
rows follow the prepared table (``index.csv``). Sparse matrices stay sparse (CSR, float32).

The vectorisers are saved as JSON (settings, terms in column order, idf weights) rather
than pickled: scikit-learn's pickle carries a memory address (``_stop_words_id``), so two
identical fits would give different bytes and DVC would retrain both text branches.

The TF-IDF and count matrices are the same bytes on any x86-64 CPU: numpy picks its sort and
its ``log`` by the CPU's SIMD extensions (AVX2, AVX-512), and scikit-learn cuts the vocabulary
to ``max_features`` with an unstable sort and weighs terms with that ``log``. So the cut breaks
ties by term (a stable sort), and the logarithms come from ``portable_log``.
"""

from __future__ import annotations

import json
import logging
from decimal import Context, Decimal
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.preprocessing import normalize

from moviegenre.config.settings import Number, Settings, to_dict
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.files import atomic_dir, json_text
from moviegenre.features.store import INDEX, write_arrays
from moviegenre.features.tokenizer import Tokenizer

log = logging.getLogger(__name__)


class TfidfSettings(Settings):  # in params.yaml's order: the featurizer saves them as they come
    ngram_max: int = Field(ge=1, le=5)
    min_df: int = Field(ge=1)
    max_df: Number = Field(ge=0.01, le=1.0)
    max_features: int | None = Field(ge=1)
    sublinear_tf: bool
    stop_words: Literal["english"] | None


class CountsSettings(Settings):
    ngram_max: int = Field(ge=1, le=5)
    min_df: int = Field(ge=1)
    max_features: int | None = Field(ge=1)
    stop_words: Literal["english"] | None


class SequencesSettings(Settings):
    vocab_size: int = Field(ge=100)
    length: int = Field(ge=8, le=5000)


class TextSettings(Settings):
    tfidf: TfidfSettings
    counts: CountsSettings
    sequences: SequencesSettings


FEATURE_SET = "text"
TFIDF_MODEL, COUNTS_MODEL, TOKENIZER = "tfidf.json", "counts.json", "tokenizer.json"
STATE_FILES = {"tfidf": (TFIDF_MODEL,), "counts": (COUNTS_MODEL,), "sequences": (TOKENIZER,)}


LOG_CONTEXT = Context(prec=40)  # digits of each logarithm before it is rounded to a float64


def portable_log(values: np.ndarray) -> np.ndarray:
    """The natural logarithm of positive ``values`` as float64, the same bits on every CPU.

    Computed in decimal arithmetic (no SIMD, no libm) once per distinct value: the values
    here are term counts and document-frequency ratios, a few thousand distinct ones at most.
    """
    distinct, positions = np.unique(np.asarray(values, dtype=np.float64), return_inverse=True)
    logs = np.array([float(Decimal(float(v)).ln(LOG_CONTEXT)) for v in distinct], dtype=np.float64)
    return logs[positions.reshape(np.shape(values))]


class PortableTfidfVectorizer(TfidfVectorizer):
    """scikit-learn's TF-IDF (smooth idf, optional sublinear tf, L2 rows) with ``portable_log``.

    The counting, the vocabulary and the row normalisation are scikit-learn's own; only the
    two logarithms (idf and sublinear tf) are computed here.
    """

    def fit(self, raw_documents: Any, y: Any = None) -> PortableTfidfVectorizer:
        counts = CountVectorizer.fit_transform(self, raw_documents)
        documents = np.bincount(sp.csr_matrix(counts).indices, minlength=counts.shape[1])
        self.idf_ = portable_log((counts.shape[0] + 1) / (documents + 1.0)) + 1.0
        return self

    def fit_transform(self, raw_documents: Any, y: Any = None) -> sp.csr_matrix:
        return self.fit(raw_documents).transform(raw_documents)

    def transform(self, raw_documents: Any) -> sp.csr_matrix:
        weights = sp.csr_matrix(CountVectorizer.transform(self, raw_documents), dtype=self.dtype)
        if self.sublinear_tf:
            weights.data = (portable_log(weights.data) + 1.0).astype(self.dtype)
        weights.data *= np.asarray(self.idf_, dtype=np.float64)[weights.indices]
        return normalize(weights, norm="l2", copy=False)


def fit_vectoriser(vectoriser: CountVectorizer, plots: Any) -> CountVectorizer:
    """Fit ``vectoriser`` on ``plots``, its ``max_features`` most frequent terms chosen with ties to the earlier term.

    scikit-learn's own cut sorts the counts with numpy's unstable sort, whose order of equal
    counts follows the CPU's SIMD sort; here the cut is a stable sort over the terms in
    alphabetical order, and the vectoriser is then fitted on exactly those terms.
    """
    shared = {k: v for k, v in vectoriser.get_params().items() if k in CountVectorizer().get_params()}
    counter = CountVectorizer(**shared | {"max_features": None, "vocabulary": None})
    counts = sp.csr_matrix(counter.fit_transform(plots))
    terms = counter.get_feature_names_out()  # alphabetical: scikit-learn sorts an uncut vocabulary
    limit = vectoriser.max_features
    if limit is not None and len(terms) > limit:
        totals = np.bincount(counts.indices, weights=counts.data.astype(np.float64), minlength=len(terms))
        terms = terms[np.sort(np.argsort(-totals, kind="stable")[:limit])]
    return vectoriser.set_params(vocabulary=[str(term) for term in terms]).fit(plots)


def make_tfidf(settings: dict) -> TfidfVectorizer:
    return PortableTfidfVectorizer(
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
            fit_vectoriser(make_tfidf(settings["tfidf"]), train_plots),
            fit_vectoriser(make_counts(settings["counts"]), train_plots),
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


def featurize_text(table: pd.DataFrame, settings: TextSettings, out_dir: Path) -> dict:
    """Fit on train plots, transform all plots, write every matrix and the fitted state."""
    train = (table["split"] == "train").to_numpy()
    if not train.any():
        raise MovieGenreError("no training movies in the prepared table")
    featurizer = PlotFeaturizer.fit(table.loc[train, "plot"], to_dict(settings))  # kept as its state files say
    arrays = featurizer.transform(table["plot"])
    with atomic_dir(out_dir) as tmp:
        table[["id", "split"]].to_csv(tmp / INDEX, index=False)
        write_arrays(tmp, arrays)
        featurizer.save(tmp)
    shapes = {name: array.shape for name, array in arrays.items()}
    log.info("text features: %s", shapes)
    return shapes
