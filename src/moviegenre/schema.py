"""The schema of params.yaml: every section, key, type and range the stages accept.

params.yaml carries a comment for each key; this module is what enforces them.
"""

from __future__ import annotations

from moviegenre.params import (
    Key,
    Schema,
    integer,
    number,
    number_map,
    text,
)

BRANCHES = ("image_ml", "text_ml", "image_dl", "text_dl")

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
}
