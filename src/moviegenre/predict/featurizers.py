"""New movies' features, by the featurizers the feature stages saved.

Kept out of ``features.sets`` because only prediction needs it: the training stages' code
dependencies then stop at the feature sets' names and state files, and a change here (the
encoder cache, say) reruns no stage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from moviegenre.core.errors import MovieGenreError
from moviegenre.features import images, poster_encoder, sentence_encoder, text
from moviegenre.features.sets import check_feature_set
from moviegenre.predict import encoder_cache

Featurize = Callable[[list[str]], dict[str, Any]]

PREDICT_BATCH = 64  # plots per forward pass of the sentence encoder when many are predicted at once


def import_op_libraries(feature_sets: Iterable[str]) -> None:
    """Load, in the calling thread, the TensorFlow op libraries that loading these featurizers loads.

    ``Predictor`` loads featurizers in threads of their own while branches already predict, and a
    library that registers ops (tensorflow_text's WordPiece ops, which the sentence encoder's
    tokenizer runs) can deadlock TensorFlow when it registers them while another thread runs ops.
    Imported here first, its registration is over before any of those threads starts.
    """
    if sentence_encoder.FEATURE_SET in feature_sets:
        import tensorflow_text  # noqa: F401


def load_featurizer(feature_set: str, feature_dir: Path) -> Featurize:
    """A function from new movies' inputs (poster paths or plots) to the feature set's arrays.

    Whatever a damaged state file makes its reader raise becomes one line naming the directory.
    """
    check_feature_set(feature_set)
    try:
        return _load(feature_set, feature_dir)
    except MovieGenreError:
        raise
    except Exception as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise MovieGenreError(
            f"{feature_dir}: its fitted state cannot be read ({type(exc).__name__}: {reason}); "
            f"run `dvc checkout --force {feature_dir}`"
        ) from exc


def _load(feature_set: str, feature_dir: Path) -> Featurize:
    if feature_set == images.FEATURE_SET:
        posters = images.PosterFeaturizer.load(feature_dir)
        return lambda paths: posters.transform(paths, progress=len(paths) > 1)
    if feature_set == text.FEATURE_SET:
        plots = text.PlotFeaturizer.load(feature_dir)
        return lambda texts: plots.transform(texts)
    if feature_set == sentence_encoder.FEATURE_SET:
        encoder = encoder_cache.load_cached_encoder(feature_dir)  # a SavedModel export: no build, no tracing
        return lambda texts: {"embeddings": encoder.encode(texts, PREDICT_BATCH, progress=len(texts) > 1)}
    if feature_set == poster_encoder.FEATURE_SET:
        return poster_encoder.poster_featurizer(feature_dir)
    raise AssertionError(f"feature set {feature_set!r} is in features.sets but has no featurizer here")
