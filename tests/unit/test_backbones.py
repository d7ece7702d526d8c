"""Pretrained poster backbones (``image_dl.backbone``) on tiny generated data.

The real loading path with a weights file the test writes, the frozen warm-up then
fine-tuning, every backbone's input scaling inside the model, and the one-line errors
(no network for imagenet, a missing or foreign weights file, greyscale posters).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import pytest
from helpers.builders import CPU, IMAGE_DL, PATHS, check_keras_outputs

from moviegenre.branches import image_dl
from moviegenre.branches.base import FitContext
from moviegenre.branches.image_dl import ImageCnn, backbone_model
from moviegenre.branches.keras import trainer as keras_training
from moviegenre.branches.training import train_branch
from moviegenre.core.errors import MovieGenreError

SIZE = (64, 48)  # the backbone's input: the generated posters (48 x 32) are resized up inside the model
BACKBONE = {"name": "mobilenet_v2", "weights": None, "freeze": True, "input_size": list(SIZE), "warmup_epochs": 1,
            "fine_tune_learning_rate": 0.0005}  # fmt: skip
MOBILENET = IMAGE_DL | {"backbone": BACKBONE}


def _typed(settings: dict) -> object:
    return ImageCnn(settings, 0).settings


def _mobilenet(backbone: dict | None = None, **top: object) -> dict:
    """image_dl's settings on MobileNetV2, with some backbone keys and some of the branch's own changed."""
    return MOBILENET | top | {"backbone": BACKBONE | (backbone or {})}


POSTERS = np.zeros((1, 48, 32, 3), dtype=np.uint8)


def _mobilenet_file(path: Path) -> list[np.ndarray]:
    """A MobileNetV2 weights file as someone would make one: built at the branch's size, saved."""
    path.parent.mkdir(parents=True, exist_ok=True)
    reference = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(*SIZE, 3))
    reference.save_weights(path)
    return reference.get_weights()


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.usefixtures("featurized")
def test_frozen_backbone_trains_with_the_weights_file_and_reloads() -> None:
    expected = _mobilenet_file(Path("weights/mobilenet_v2.weights.h5"))  # relative: from the project root
    branch = ImageCnn(_mobilenet({"weights": "weights/mobilenet_v2.weights.h5"}), 0)
    metrics = train_branch(branch, PATHS, CPU)
    backbone = branch.model.get_layer("backbone")
    assert not backbone.trainable and _same(backbone.get_weights(), expected)  # the file's, untouched by training
    assert branch.model.get_layer("resize").output.shape[1:3] == SIZE
    check_keras_outputs("image_dl", metrics)  # files written; load_branch reloads and gives the same probabilities


def test_random_init_backbone_trains_whole_in_one_phase() -> None:
    """weights: null is a from-scratch network: one phase, everything trainable, BatchNorm learning.

    Built, not fitted: tracing a whole MobileNetV2's training step takes 30-60 s on two shared
    cores, and the one-phase fit is the loop test_deep covers (the fine-tuning test traces one).
    """
    keras.backend.clear_session()
    settings = _mobilenet({"freeze": True}, augment=False, dropout=0.0)  # freeze: for pretrained weights only
    branch = ImageCnn(settings, 0)
    assert branch.fine_tune() is None
    model = branch.builder(POSTERS, FitContext(genres=[], runtime=CPU))(4)
    backbone = model.get_layer("backbone")
    batch_norm = [layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert backbone.trainable and len(backbone.trainable_weights) == len(backbone.weights) - 2 * len(batch_norm)
    assert {layer.momentum for layer in batch_norm} == {0.9}  # MobileNetV2's 0.999 would lag for many epochs
    posters = np.random.default_rng(0).integers(0, 256, (4, 48, 32, 3), dtype=np.uint8)
    # BatchNorm normalises by the batch's statistics while training (a pretrained backbone's would not)
    assert not np.allclose(model(posters, training=True), model(posters, training=False))


@pytest.mark.usefixtures("featurized")
def test_fine_tuning_unfreezes_the_backbone_after_the_warm_up(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _mobilenet_file(Path("mobilenet_v2.weights.h5"))
    per_epoch: list[list[np.ndarray]] = []
    log_epoch = keras_training.LiveLogger.on_epoch_end

    def snapshot(self: Any, epoch: int, logs: dict | None = None) -> None:
        per_epoch.append(self.model.get_layer("backbone").get_weights())
        log_epoch(self, epoch, logs)

    monkeypatch.setattr(keras_training.LiveLogger, "on_epoch_end", snapshot)
    pretrained = {"weights": "mobilenet_v2.weights.h5", "freeze": False}
    settings = _mobilenet(pretrained, epochs=3, patience=3, lr_patience=0)
    branch = ImageCnn(settings, 0)
    metrics = train_branch(branch, PATHS, CPU)

    backbone = branch.model.get_layer("backbone")
    batch_norm = {id(v) for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)
                  for v in layer.weights}  # fmt: skip
    is_bn = [id(v) in batch_norm for v in backbone.weights]
    assert metrics["epochs"]["run"] == 3 and len(per_epoch) == 3
    assert _same(per_epoch[0], expected)  # warm-up: frozen
    for weights in per_epoch[1:]:  # fine-tuning: the convolutions move, BatchNorm stays ImageNet's
        assert any(not np.array_equal(w, e) for w, e, bn in zip(weights, expected, is_bn, strict=True) if not bn)
        assert all(np.array_equal(w, e) for w, e, bn in zip(weights, expected, is_bn, strict=True) if bn)
    assert _same(backbone.get_weights(), per_epoch[metrics["epochs"]["best"] - 1])  # the best epoch's, either phase

    # dvclive: one row per epoch of both phases, steps counting on, the fine-tuning rate from epoch 2
    plots = Path("dvclive/image_dl/plots/metrics")
    assert pd.read_csv(plots / "val/auc.tsv", sep="\t")["step"].tolist() == [0, 1, 2]
    rates = pd.read_csv(plots / "learning_rate.tsv", sep="\t")["learning_rate"].tolist()
    assert rates == pytest.approx([IMAGE_DL["learning_rate"], 0.0005, 0.0005])


def test_imagenet_without_network_fails_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise OSError("network disabled by the test")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # an empty cache
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    build = ImageCnn(_mobilenet({"weights": "imagenet"}), 0).builder(POSTERS, FitContext(genres=[], runtime=CPU))
    with pytest.raises(MovieGenreError) as error:
        build(4)
    message = str(error.value)
    name = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    assert "\n" not in message and message.startswith(f"image_dl.backbone.weights is imagenet but {name} is not in ")
    assert f"download https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/{name}" in message
    assert "set image_dl.backbone.weights to its path" in message and str(tmp_path / "keras" / "models") in message
    assert "(network disabled by the test)" in message
    assert socket.getdefaulttimeout() is None  # the download's timeout does not outlive it
    assert not [path for path in (tmp_path / "keras").rglob("*") if path.is_file()]  # nor does a partial file


@pytest.fixture
def process_timeout() -> Iterator[float]:
    """A process-wide default socket timeout of 7.5 s, as a server or a library might have set: the
    download must neither change it nor use it."""
    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(7.5)
    yield 7.5
    socket.setdefaulttimeout(before)


def test_the_download_has_its_own_timeout_and_leaves_the_processs_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http_server: Callable, process_timeout: float
) -> None:
    """Building image_dl on imagenet weights downloads them with a timeout on the request: while
    it runs, every other socket of the process keeps its default timeout."""
    seen: list[float | None] = []

    def not_found(handler: BaseHTTPRequestHandler) -> None:
        seen.append(socket.getdefaulttimeout())  # the server's thread sees the process-wide default
        handler.send_error(404)

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(image_dl, "_STORAGE", http_server(not_found) + "/")
    build = ImageCnn(_mobilenet({"weights": "imagenet"}), 0).builder(POSTERS, FitContext(genres=[], runtime=CPU))
    with pytest.raises(MovieGenreError) as caught:
        build(4)
    assert seen == [process_timeout] and socket.getdefaulttimeout() == process_timeout
    assert "cannot be downloaded (HTTP 404 Not Found); on a machine with internet" in str(caught.value)

    def never_answers(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(3)

    monkeypatch.setattr(image_dl, "DOWNLOAD_TIMEOUT_S", 0.2)  # the request's, shorter than the process's 7.5 s
    monkeypatch.setattr(image_dl, "_STORAGE", http_server(never_answers) + "/")
    started = time.monotonic()
    with pytest.raises(MovieGenreError, match=r"cannot be downloaded \(timed out\)"):
        image_dl.imagenet_weights("mobilenet_v2", SIZE)
    assert time.monotonic() - started < 2 and socket.getdefaulttimeout() == process_timeout


def test_imagenet_weights_are_downloaded_once_into_keras_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http_server: Callable
) -> None:
    requests: list[str] = []

    def weights(handler: BaseHTTPRequestHandler) -> None:
        requests.append(handler.path)
        body = b"HDF5 bytes " * 50_000  # several copy blocks
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(image_dl, "_STORAGE", http_server(weights) + "/")
    name, _ = image_dl.imagenet_file("mobilenet_v2", SIZE)
    path = image_dl.imagenet_weights("mobilenet_v2", SIZE)
    assert path == tmp_path / "keras" / "models" / name and path.read_bytes() == b"HDF5 bytes " * 50_000
    assert image_dl.imagenet_weights("mobilenet_v2", SIZE) == path  # the second time from the cache
    assert requests == [f"/tensorflow/keras-applications/mobilenet_v2/{name}"]
    assert [p.name for p in path.parent.iterdir()] == [name]


def test_missing_or_foreign_weights_file_fails_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MovieGenreError, match=rf"^{tmp_path}/nope\.weights\.h5: weights file not found; set image_dl"):
        backbone_model(48, 32, 4, _typed(_mobilenet({"weights": "nope.weights.h5"})), 0)
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    other.save_weights(tmp_path / "dense.weights.h5")
    with pytest.raises(MovieGenreError) as error:
        backbone_model(48, 32, 4, _typed(_mobilenet({"weights": "dense.weights.h5"})), 0)
    assert str(error.value).startswith(f"{tmp_path}/dense.weights.h5: does not hold mobilenet_v2 weights")
    assert "\n" not in str(error.value)


def test_greyscale_and_a_warm_up_without_epochs_left_are_refused() -> None:
    with pytest.raises(
        MovieGenreError, match=r"^image_dl\.channels is 1 but image_dl\.backbone\.name mobilenet_v2 takes RGB"
    ):
        ImageCnn(_mobilenet(channels=1), 0).builder(POSTERS[..., :1], FitContext(genres=[], runtime=CPU))
    settings = _mobilenet({"weights": "imagenet", "freeze": False, "warmup_epochs": 3}, epochs=3)
    with pytest.raises(
        MovieGenreError, match=r"^image_dl\.backbone\.warmup_epochs \(3\) must be below image_dl\.epochs \(3\)"
    ):
        ImageCnn(settings, 0).fine_tune()
    pretrained = {"weights": "imagenet", "freeze": False, "warmup_epochs": 3}
    assert ImageCnn(_mobilenet(pretrained, epochs=4), 0).fine_tune() is not None
    assert ImageCnn(_mobilenet(pretrained | {"freeze": True}, epochs=4), 0).fine_tune() is None
    assert ImageCnn(_mobilenet(pretrained | {"weights": None}, epochs=4), 0).fine_tune() is None


@pytest.mark.parametrize(
    ("backbone", "scaling", "reference"),
    [
        ("mobilenet_v2", "scale_to_pm1", keras.applications.mobilenet_v2.preprocess_input),
        ("resnet50", "caffe_bgr_mean", keras.applications.resnet50.preprocess_input),
        ("vgg16", "caffe_bgr_mean", keras.applications.vgg16.preprocess_input),
        ("efficientnet_b0", None, None),
    ],
)
def test_each_backbone_builds_with_its_input_scaling_inside(backbone: str, scaling: str | None, reference: Any) -> None:
    keras.backend.clear_session()
    settings = _mobilenet({"name": backbone, "input_size": [32, 32]}, augment=False)
    model = backbone_model(48, 32, 4, _typed(settings), 0)
    net = model.get_layer("backbone")
    assert net.input.shape[1:] == (32, 32, 3) and model.output.shape[1:] == (4,)
    posters = np.random.default_rng(0).integers(0, 256, (2, 48, 32, 3), dtype=np.uint8)
    resized = keras.Model(model.input, model.get_layer("resize").output)(posters).numpy()
    if scaling is None:  # EfficientNet takes 0-255 and rescales itself
        assert [type(layer).__name__ for layer in net.layers[1:3]] == ["Rescaling", "Normalization"]
        assert not any(
            type(layer).__name__ in ("Rescaling", "Dense") for layer in model.layers[:-1] if layer is not net
        )
    else:
        scaled = keras.Model(model.input, model.get_layer(scaling).output)(posters).numpy()
        np.testing.assert_allclose(scaled, reference(resized.copy()), atol=1e-4)


def test_efficientnet_weights_file_gets_the_imagenet_normalisation_fix(tmp_path: Path) -> None:
    """Keras corrects EfficientNet's stored variances only for weights="imagenet"; a local copy gets it too."""
    keras.backend.clear_session()
    source = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(32, 32, 3))
    (norm,) = [layer for layer in source.layers if isinstance(layer, keras.layers.Normalization)]
    norm.adapt_mean.assign([0.485, 0.456, 0.406])
    norm.adapt_variance.assign([0.229, 0.224, 0.225])  # as ImageNet's file has them: the deviations
    source.save_weights(tmp_path / "efficientnet.weights.h5")
    weights = str(tmp_path / "efficientnet.weights.h5")
    settings = _mobilenet({"name": "efficientnet_b0", "input_size": [32, 32], "weights": weights})
    net = backbone_model(48, 32, 4, _typed(settings), 0).get_layer("backbone")
    (loaded,) = [layer for layer in net.layers if isinstance(layer, keras.layers.Normalization)]
    np.testing.assert_allclose(np.asarray(loaded.adapt_variance), np.square([0.229, 0.224, 0.225]), rtol=1e-6)
    pixels = np.full((1, 32, 32, 3), 255.0, dtype=np.float32)  # white: (1 - mean) / deviation per channel
    first = keras.Model(net.input, loaded.output)(pixels).numpy()[0, 0, 0]
    np.testing.assert_allclose(first, (1 - np.array([0.485, 0.456, 0.406])) / [0.229, 0.224, 0.225], rtol=1e-5)
