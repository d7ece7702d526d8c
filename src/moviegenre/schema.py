"""The schema of params.yaml: every section, key, type and range the stages accept.

params.yaml carries a comment for each key; this module is what enforces them.
"""

from __future__ import annotations

from moviegenre.params import Key, Schema, boolean, choice, integer, number, number_map, string_list, text

BRANCHES = ("image_ml", "text_ml", "image_dl", "text_dl")


def _max_features(value: str | float) -> str | None:
    if isinstance(value, str):
        return None if value in ("sqrt", "log2") else f"must be sqrt, log2, an int or a fraction, not {value!r}"
    if isinstance(value, int):
        return None if value >= 1 else f"must be at least 1, not {value}"
    return None if 0 < value <= 1 else f"must be a fraction in (0, 1], not {value}"


_forest: Schema = {
    "n_estimators": integer(1, 5000),
    "max_depth": integer(1, 1000, nullable=True),
    "max_features": Key((str, int, float), _max_features, describe="sqrt, log2, an int or a fraction"),
    "min_samples_leaf": integer(1, 10000),
    "class_weight": choice("balanced", "balanced_subsample", nullable=True),
    "n_jobs": integer(-1, 256),
}

_training: Schema = {
    "epochs": integer(1, 1000),
    "batch_size": integer(1, 4096),
    "learning_rate": number(1e-6, 1.0),
    "weight_decay": number(0.0, 1.0),
    "lr_patience": integer(0, 1000),
    "dropout": number(0.0, 0.95),
    "patience": integer(1, 1000),
}

SCHEMA: dict[str, Key | Schema] = {
    "seed": integer(0, 2**31 - 1),
    "data": {
        "source": text(),
        "sha256": text(r"[0-9a-fA-F]{64}", nullable=True, describe="64 hex digits"),
        "limit": integer(10, nullable=True),
        "poster_workers": integer(1, 64),
        "timeout_s": number(1, 3600),
        "retries": integer(0, 20),
    },
    "prepare": {
        "split": number_map(("train", "val", "test")),
        "min_genre_count": integer(1),
    },
    "images": {
        "height": integer(16, 1024),
        "width": integer(16, 1024),
        "pca_components": integer(1, 1000),
        "workers": integer(0, 256),
    },
    "text": {
        "tfidf": {
            "ngram_max": integer(1, 5),
            "min_df": integer(1),
            "max_df": number(0.01, 1.0),
            "max_features": integer(1, nullable=True),
            "sublinear_tf": boolean(),
            "stop_words": choice("english", nullable=True),
        },
        "counts": {
            "ngram_max": integer(1, 5),
            "min_df": integer(1),
            "max_features": integer(1, nullable=True),
            "stop_words": choice("english", nullable=True),
        },
        "sequences": {
            "vocab_size": integer(100),
            "length": integer(8, 5000),
        },
    },
    "image_ml": {"features": choice("pca", "pca+color"), **_forest},
    "text_ml": {"features": choice("tfidf"), **_forest},
    "image_dl": {
        "arch": choice("seed", "bn_gap"),
        "channels": Key((int,), lambda v: None if v in (1, 3) else f"must be 1 or 3, not {v}", describe="1 or 3"),
        **_training,
        "augment": boolean(),
        "downsample": integer(1, 8),
    },
    "text_dl": {
        "arch": choice("mlp", "lstm"),
        **_training,
        "hidden_units": integer(1, 8192),
        "embedding_dim": integer(1, 1024),
        "lstm_units": integer(1, 4096),
    },
    "runtime": {
        "device": choice("auto", "cpu", "gpu"),
        "mixed_precision": boolean(),
        "deterministic": boolean(),
        "intra_op_threads": integer(0, 256),
        "inter_op_threads": integer(0, 256),
    },
    "ensemble": {
        "method": choice("mean", "weighted", "val"),
        "weights": number_map(BRANCHES),
        "branches": string_list(BRANCHES),
    },
}
