"""The feature sets by name: the state files behind each array, and what a movie needs to be in one.

A new feature set is one entry in each mapping below (and one in predict.featurizers, which
featurizes new movies and is kept apart so that training stages do not depend on it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from moviegenre.core.errors import MovieGenreError
from moviegenre.core.paths import FEATURE_MODALITY
from moviegenre.features import images, poster_encoder, sentence_encoder, text
from moviegenre.features.store import fingerprint

STATE_FILES: dict[str, Mapping[str, tuple[str, ...]]] = {
    images.FEATURE_SET: images.STATE_FILES,
    text.FEATURE_SET: text.STATE_FILES,
    sentence_encoder.FEATURE_SET: sentence_encoder.STATE_FILES,
    poster_encoder.FEATURE_SET: poster_encoder.STATE_FILES,
}

# What each set featurizes, so what a movie needs to be in it (a poster or a plot); the same
# map lays out data/features/<modality>/<set>.
MODALITY: Mapping[str, str] = {name: FEATURE_MODALITY[name] for name in STATE_FILES}


def check_feature_set(feature_set: str) -> None:
    if feature_set not in STATE_FILES:
        raise MovieGenreError(f"unknown feature set {feature_set!r} (known: {', '.join(STATE_FILES)})")


def features_fingerprint(feature_set: str, feature_dir: Path, arrays: Iterable[str]) -> str:
    """Fingerprint of the fitted state behind ``arrays`` (what a model spec records)."""
    check_feature_set(feature_set)
    files = {name for array in arrays for name in STATE_FILES[feature_set][array]}
    return fingerprint(feature_dir, files)


def sets_fingerprint(
    arrays_by_set: Mapping[str, Iterable[str]], directory: Callable[[str], Path]
) -> str | dict[str, str]:
    """What a model spec records for arrays of one or several sets (``directory``: set -> its directory).

    One set gives its ``features_fingerprint``, the form single-set specs have always had;
    several give each set's, by name, so a refused model says which set was refitted.
    """
    by_set = {name: features_fingerprint(name, directory(name), arrays) for name, arrays in arrays_by_set.items()}
    return next(iter(by_set.values())) if len(by_set) == 1 else by_set
