"""The feature sets by name: what each one fits, and the state files behind each array.

Prediction asks here for the featurizer of a branch's feature set, so a new feature set is
one entry below.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from moviegenre.core.errors import MovieGenreError
from moviegenre.features import images, text
from moviegenre.features.store import fingerprint

STATE_FILES: dict[str, dict[str, tuple[str, ...]]] = {
    images.FEATURE_SET: images.STATE_FILES,
    text.FEATURE_SET: text.STATE_FILES,
}


def features_fingerprint(feature_set: str, feature_dir: Path, arrays: Iterable[str]) -> str:
    """Fingerprint of the fitted state behind ``arrays`` (what a model spec records)."""
    if feature_set not in STATE_FILES:
        raise MovieGenreError(f"unknown feature set {feature_set!r} (known: {', '.join(STATE_FILES)})")
    files = {name for array in arrays for name in STATE_FILES[feature_set][array]}
    return fingerprint(feature_dir, files)
