"""Deep branches on tiny generated data: every architecture trains and writes its files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_features import IMAGES, TEXT

from moviegenre import runtime
from moviegenre.dataset import load_prepared
from moviegenre.errors import MovieGenreError
from moviegenre.image_features import featurize_images
from moviegenre.text_features import featurize_text

CPU = {"device": "cpu", "mixed_precision": True, "deterministic": True, "intra_op_threads": 0,
       "inter_op_threads": 0}  # fmt: skip
IMAGE_DL = {"arch": "bn_gap", "channels": 3, "epochs": 1, "batch_size": 16, "learning_rate": 0.001,
            "weight_decay": 0.0001, "lr_patience": 1, "dropout": 0.2, "augment": True, "downsample": 2,
            "patience": 1}  # fmt: skip
TEXT_DL = {"arch": "mlp", "epochs": 1, "batch_size": 16, "learning_rate": 0.001, "weight_decay": 0.0,
           "lr_patience": 0, "dropout": 0.2, "patience": 1, "hidden_units": 16, "embedding_dim": 8,
           "lstm_units": 8}  # fmt: skip


@pytest.fixture
def featurized(prepared_project: Path) -> Path:
    table, _ = load_prepared()
    featurize_images(table, IMAGES, seed=0)
    featurize_text(table, TEXT)
    return prepared_project


def _check_outputs(branch: str, metrics: dict) -> None:
    table, genres = load_prepared()
    assert Path(f"models/{branch}.keras").stat().st_size > 0
    predictions = pd.read_parquet(f"data/predictions/{branch}.parquet")
    assert list(predictions.columns) == ["id", "split", *genres]
    assert predictions["id"].tolist() == table.loc[table["split"].isin(["val", "test"]), "id"].tolist()
    values = predictions[genres].to_numpy()
    assert ((values >= 0) & (values <= 1)).all()
    written = json.loads(Path(f"metrics/{branch}.json").read_text())
    assert written == metrics
    assert {"test", "val", "seconds", "epochs", "throughput"} <= set(written)
    assert 0.0 <= written["test"]["roc_auc_macro"] <= 1.0 and written["test"]["n_genres"] == len(genres)
    assert written["epochs"]["run"] == 1 and written["throughput"]["train_per_s"] > 0
    # dvclive: one row per epoch with train and val loss/AUC
    plots = Path(f"dvclive/{branch}/plots/metrics")
    logged = {p.relative_to(plots).as_posix() for p in plots.rglob("*.tsv")}
    assert {"train/loss.tsv", "train/auc.tsv", "val/loss.tsv", "val/auc.tsv"} <= logged


@pytest.mark.parametrize(("arch", "channels", "downsample"), [("seed", 1, 1), ("bn_gap", 3, 2), ("bn_gap", 1, 1)])
def test_image_architectures_train_and_write_outputs(
    featurized: Path, arch: str, channels: int, downsample: int
) -> None:
    from moviegenre.deep_training import train_image_branch

    strategy, device = runtime.configure(CPU, seed=0)
    settings = IMAGE_DL | {"arch": arch, "channels": channels, "downsample": downsample}
    metrics = train_image_branch(settings, 0, strategy, device)
    _check_outputs("image_dl", metrics)


@pytest.mark.parametrize("arch", ["mlp", "lstm"])
def test_text_architectures_train_and_write_outputs(featurized: Path, arch: str) -> None:
    from moviegenre.deep_training import train_text_branch

    strategy, device = runtime.configure(CPU, seed=0)
    metrics = train_text_branch(TEXT_DL | {"arch": arch}, 0, strategy, device)
    _check_outputs("text_dl", metrics)


def test_same_seed_gives_the_same_val_auc_twice(featurized: Path) -> None:
    from moviegenre.deep_training import train_text_branch

    settings = TEXT_DL | {"epochs": 2, "patience": 2}
    scores = []
    for _ in range(2):
        strategy, device = runtime.configure(CPU, seed=5)
        metrics = train_text_branch(settings, 5, strategy, device)
        scores.append(metrics["val"]["roc_auc_macro"])
        probabilities = pd.read_parquet("data/predictions/text_dl.parquet").iloc[:, 2:].to_numpy()
        if len(scores) == 1:
            first = probabilities
    assert scores[0] == pytest.approx(scores[1], abs=1e-6)
    np.testing.assert_allclose(first, probabilities, atol=1e-6)


def test_gpu_requested_without_gpu_fails_clearly() -> None:
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    with pytest.raises(MovieGenreError, match=r"runtime\.device is 'gpu' but TensorFlow sees no GPU"):
        runtime.configure(CPU | {"device": "gpu"}, seed=0)
