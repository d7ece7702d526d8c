"""params.yaml's ``data`` section: where the dataset comes from, the download's bounds, and the
sample of movies ``prepare`` keeps (``limit``, the one key the prepare stage reads: it depends on
this file alone of the download package)."""

from __future__ import annotations

from pydantic import Field

from moviegenre.config.sections import Sha256, Text
from moviegenre.config.settings import Number, Settings


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
