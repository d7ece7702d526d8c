"""The value types several sections share, and ``seed``, which every stage reads.

Each section's model is beside the code that reads it: ``data`` in ``download.settings``,
``prepare`` in ``data.prepare``, ``runtime`` in ``config.runtime``, each featurizer's and
encoder's in its module under ``features``, a branch's beside the branch (``Branch.Settings``),
the ensemble's in ``ensemble.settings``; ``cli.check`` puts them all together.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

from moviegenre.config.settings import checked

Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]
Sha256 = Annotated[str, checked(lambda value: re.fullmatch("[0-9a-fA-F]{64}", value), "64 hex digits")]
Text = Annotated[str, checked(str.strip, "a non-empty string")]
