"""The schema of params.yaml's shared sections: seed, data, prepare, features and runtime.

Each branch declares its own section's schema beside its code (``Branch.schema``) and the
ensemble declares its own; ``cli.check.full_schema`` puts them all together. params.yaml
carries a comment for each key; the schemas are what enforce them.
"""

from __future__ import annotations

from moviegenre.config.keys import Key, Schema, boolean, choice, integer, number, number_map, text
from moviegenre.config.runtime import RuntimeSettings
from moviegenre.config.settings import schema_of

SECTIONS: dict[str, Key | Schema] = {
    "seed": integer(0, 2**31 - 1),
    "data": {
        "source": text(),
        "sha256": text(r"[0-9a-fA-F]{64}", nullable=True, describe="64 hex digits"),
        "limit": integer(10, nullable=True),
        "poster_workers": integer(1, 64),
        "timeout_s": number(1, 3600),
        "retries": integer(0, 20),
        "deadline_s": number(1, nullable=True),
        "max_poster_mb": number(0.01, 100_000),
        "poster_deadline_s": number(1, 86_400),
        "max_extract_gb": number(0.001),
        "max_members": integer(1),
        "max_compression_ratio": number(1),
    },
    "prepare": {
        "split": number_map(("train", "val", "test"), total=1.0, positive=True),
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
    "embed_text": {
        "preset": text(describe="a directory or hf://owner/name"),
        "sha256": text(r"[0-9a-fA-F]{64}", nullable=True, describe="64 hex digits"),
        "sequence_length": integer(8, 512),
        "long_texts": choice("cut", "windows"),
        "batch_size": integer(1, 4096),
        "precision": choice("auto", "float32", "mixed_bfloat16"),
    },
    "word2vec": {
        "vector_size": integer(1, 1024),
        "window": integer(1, 50),
        "min_count": integer(1),
        "epochs": integer(1, 1000),
        "sg": boolean(),
    },
    "runtime": schema_of(RuntimeSettings),
}
