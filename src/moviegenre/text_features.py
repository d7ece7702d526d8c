"""Plot features: TF-IDF (RandomForest), counts (dense NN) and token ids (LSTM).

All three are fitted on the text branches' training movies (train split, with plot-only
movies) and applied to every movie; rows follow the prepared table (``index.csv``).
Sparse matrices stay sparse (CSR, float32) on disk and in memory.
"""

from __future__ import annotations

import logging
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

from moviegenre.atomic import atomic_dir
from moviegenre.errors import MovieGenreError
from moviegenre.feature_index import INDEX
from moviegenre.tokenizer import Tokenizer

log = logging.getLogger(__name__)

TEXT_DIR = Path("data/features/text")
TFIDF, TFIDF_MODEL = "tfidf.npz", "tfidf.joblib"
COUNTS, COUNTS_MODEL = "counts.npz", "counts.joblib"
SEQUENCES, TOKENIZER = "sequences.npy", "tokenizer.json"


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


def featurize_text(table: pd.DataFrame, settings: dict, out_dir: Path = TEXT_DIR) -> dict[str, tuple]:
    """Fit on train plots, transform all plots, write every matrix and fitted transformer."""
    train = (table["split"] == "train").to_numpy()
    if not train.any():
        raise MovieGenreError("no training movies in the prepared table")
    train_plots, plots = table.loc[train, "plot"], table["plot"]
    tfidf = make_tfidf(settings["tfidf"]).fit(train_plots)
    counts = make_counts(settings["counts"]).fit(train_plots)
    sequences = settings["sequences"]
    tokenizer = Tokenizer(sequences["vocab_size"], sequences["length"]).fit(train_plots)

    tfidf_matrix = tfidf.transform(plots).tocsr()
    counts_matrix = counts.transform(plots).tocsr()
    ids = tokenizer.transform(plots)
    with atomic_dir(out_dir) as tmp:
        table[["id", "split"]].to_csv(tmp / INDEX, index=False)
        sp.save_npz(tmp / TFIDF, tfidf_matrix)
        sp.save_npz(tmp / COUNTS, counts_matrix)
        np.save(tmp / SEQUENCES, ids)
        joblib.dump(tfidf, tmp / TFIDF_MODEL)
        joblib.dump(counts, tmp / COUNTS_MODEL)
        tokenizer.save(tmp / TOKENIZER)
    shapes = {"tfidf": tfidf_matrix.shape, "counts": counts_matrix.shape, "sequences": ids.shape}
    log.info("text features: %s", shapes)
    return shapes


def load_matrix(feature_dir: Path, name: str) -> sp.csr_matrix:
    path = feature_dir / name
    if not path.is_file():
        raise MovieGenreError(f"{path}: not found (run `dvc repro featurize_text`)")
    return sp.load_npz(path).tocsr()
