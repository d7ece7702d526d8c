"""Deep branches on tiny generated data: every architecture trains and writes its files."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.builders import CPU, IMAGE_DL, PATHS, TEXT_DL, check_keras_outputs

from moviegenre.branches.image_dl import ImageCnn
from moviegenre.branches.text_dl import TextNet
from moviegenre.branches.training import train_branch
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.runtime import tensorflow_setup as runtime


@pytest.mark.parametrize(
    ("arch", "channels", "downsample"), [("classic_cnn", 1, 1), ("bn_gap", 3, 2), ("bn_gap", 1, 1)]
)
def test_image_architectures_train_and_write_outputs(
    featurized: Path, arch: str, channels: int, downsample: int
) -> None:
    settings = IMAGE_DL | {"arch": arch, "channels": channels, "downsample": downsample}
    metrics = train_branch(ImageCnn(settings, 0), PATHS, CPU)
    check_keras_outputs("image_dl", metrics)


@pytest.mark.parametrize("arch", ["mlp", "lstm"])
def test_text_architectures_train_and_write_outputs(featurized: Path, arch: str) -> None:
    metrics = train_branch(TextNet(TEXT_DL | {"arch": arch}, 0), PATHS, CPU)
    check_keras_outputs("text_dl", metrics)


def test_same_seed_gives_the_same_bytes_twice(featurized: Path) -> None:
    settings = TEXT_DL | {"epochs": 2, "patience": 2}
    written = []
    for _ in range(2):
        train_branch(TextNet(settings, 5), PATHS, CPU)
        written.append([Path(p).read_bytes() for p in ("models/text_dl/model.keras", "models/text_dl/spec.json",
                        "data/predictions/text_dl.parquet", "metrics/text_dl.json")])  # fmt: skip
    assert written[0] == written[1]


def test_gpu_requested_without_gpu_fails_clearly() -> None:
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    with pytest.raises(MovieGenreError, match=r"runtime\.device is 'gpu' but TensorFlow sees no GPU"):
        runtime.configure(CPU.model_copy(update={"device": "gpu"}), seed=0)
