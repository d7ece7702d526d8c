"""The shared sections of params.yaml: seed, data, prepare, the featurizers' and the plot encoder's.

``runtime`` is in ``config.runtime``; a branch's section is beside the branch (``Branch.Settings``),
the ensemble's and the poster encoder's beside them; ``cli.check`` puts them all together.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

from pydantic import Field, model_validator

from moviegenre.config.settings import Number, Settings, checked

Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]
Sha256 = Annotated[str, checked(lambda value: re.fullmatch("[0-9a-fA-F]{64}", value), "64 hex digits")]
Text = Annotated[str, checked(str.strip, "a non-empty string")]


class DataSettings(Settings):
    source: Text
    sha256: Sha256 | None
    limit: int | None = Field(ge=10)
    poster_workers: int = Field(ge=1, le=64)
    timeout_s: Number = Field(ge=1, le=3600)
    retries: int = Field(ge=0, le=20)
    deadline_s: Number | None = Field(ge=1)
    max_poster_mb: Number = Field(ge=0.01, le=100_000)
    poster_deadline_s: Number = Field(ge=1, le=86_400)
    max_extract_gb: Number = Field(ge=0.001)
    max_members: int = Field(ge=1)
    max_compression_ratio: Number = Field(ge=1)


class SplitSettings(Settings):  # prepare.split: fractions of the movies with both poster and plot
    train: Number = Field(gt=0)
    val: Number = Field(gt=0)
    test: Number = Field(gt=0)

    @model_validator(mode="after")
    def _adds_up(self) -> SplitSettings:
        total = self.train + self.val + self.test
        if not math.isclose(total, 1.0, abs_tol=1e-9):
            raise ValueError(f"must add up to 1, not {total:g}")
        return self


class PrepareSettings(Settings):
    split: SplitSettings
    min_genre_count: int = Field(ge=1)


class ImagesSettings(Settings):
    height: int = Field(ge=16, le=1024)
    width: int = Field(ge=16, le=1024)
    pca_components: int = Field(ge=1, le=1000)
    workers: int = Field(ge=0, le=256)


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


class EmbedTextSettings(Settings):
    preset: Text  # a directory, or hf://owner/name
    sha256: Sha256 | None
    sequence_length: int = Field(ge=8, le=512)
    long_texts: Literal["cut", "windows"]
    batch_size: int = Field(ge=1, le=4096)
    precision: Literal["auto", "float32", "mixed_bfloat16"]


class Word2VecSettings(Settings):
    vector_size: int = Field(ge=1, le=1024)
    window: int = Field(ge=1, le=50)
    min_count: int = Field(ge=1)
    epochs: int = Field(ge=1, le=1000)
    sg: bool
