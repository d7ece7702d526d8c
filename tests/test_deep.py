"""Deep branches on tiny generated data: every architecture trains and writes its files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_features import IMAGES, TEXT

from moviegenre.branches import runtime
from moviegenre.branches.image_cnn import ImageCnn
from moviegenre.branches.keras_training import fit_keras
from moviegenre.branches.registry import load_branch
from moviegenre.branches.text_nn import TextNet
from moviegenre.branches.training import train_branch
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.paths import ProjectPaths
from moviegenre.data.table import load_prepared
from moviegenre.features.images import featurize_images
from moviegenre.features.store import load_array
from moviegenre.features.text import featurize_text

PATHS = ProjectPaths(Path("."))

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
    table, _ = load_prepared(PATHS.prepared)
    featurize_images(table, IMAGES, seed=0, out_dir=PATHS.features("images"))
    featurize_text(table, TEXT, out_dir=PATHS.features("text"))
    return prepared_project


def _check_outputs(branch: str, metrics: dict) -> None:
    table, genres = load_prepared(PATHS.prepared)
    assert Path(f"models/{branch}/model.keras").stat().st_size > 0
    predictions = pd.read_parquet(f"data/predictions/{branch}.parquet")
    assert list(predictions.columns) == ["id", "split", *genres]
    assert predictions["id"].tolist() == table.loc[table["split"].isin(["val", "test"]), "id"].tolist()
    values = predictions[genres].to_numpy()
    assert ((values >= 0) & (values <= 1)).all()
    written = json.loads(Path(f"metrics/{branch}.json").read_text())
    assert written == metrics
    assert set(written) == {"test", "val", "epochs"}
    assert 0.0 <= written["test"]["roc_auc_macro"] <= 1.0 and written["test"]["n_genres"] == len(genres)
    timings = json.loads(Path(f"metrics/timings/{branch}.json").read_text())
    assert written["epochs"]["run"] == 1 and timings["throughput"]["train_per_s"] > 0
    # dvclive: one row per epoch with train and val loss/AUC
    plots = Path(f"dvclive/{branch}/plots/metrics")
    logged = {p.relative_to(plots).as_posix() for p in plots.rglob("*.tsv")}
    assert {"train/loss.tsv", "train/auc.tsv", "val/loss.tsv", "val/auc.tsv", "learning_rate.tsv"} <= logged
    summary = json.loads(Path(f"dvclive/{branch}/metrics.json").read_text())
    assert summary["step"] == written["epochs"]["best"] - 1  # the restored epoch, not the last
    # the saved model loads itself and predicts what the stage stored
    loaded = load_branch(Path(f"models/{branch}"))
    features = PATHS.features(loaded.feature_set)
    arrays = {name: load_array(features, name) for name in loaded.reads()}
    rows = np.flatnonzero(pd.read_csv(features / "index.csv")["split"].isin(["val", "test"]).to_numpy())
    np.testing.assert_allclose(loaded.predict_proba(loaded.inputs(arrays)[rows]), values, atol=1e-6)


@pytest.mark.parametrize(
    ("arch", "channels", "downsample"), [("classic_cnn", 1, 1), ("bn_gap", 3, 2), ("bn_gap", 1, 1)]
)
def test_image_architectures_train_and_write_outputs(
    featurized: Path, arch: str, channels: int, downsample: int
) -> None:
    settings = IMAGE_DL | {"arch": arch, "channels": channels, "downsample": downsample}
    metrics = train_branch(ImageCnn(settings, 0), PATHS, CPU, fit_keras)
    _check_outputs("image_dl", metrics)


@pytest.mark.parametrize("arch", ["mlp", "lstm"])
def test_text_architectures_train_and_write_outputs(featurized: Path, arch: str) -> None:
    metrics = train_branch(TextNet(TEXT_DL | {"arch": arch}, 0), PATHS, CPU, fit_keras)
    _check_outputs("text_dl", metrics)


def test_same_seed_gives_the_same_bytes_twice(featurized: Path) -> None:
    settings = TEXT_DL | {"epochs": 2, "patience": 2}
    written = []
    for _ in range(2):
        train_branch(TextNet(settings, 5), PATHS, CPU, fit_keras)
        written.append([Path(p).read_bytes() for p in ("models/text_dl/model.keras", "models/text_dl/spec.json",
                        "data/predictions/text_dl.parquet", "metrics/text_dl.json")])  # fmt: skip
    assert written[0] == written[1]


def test_gpu_requested_without_gpu_fails_clearly() -> None:
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    with pytest.raises(MovieGenreError, match=r"runtime\.device is 'gpu' but TensorFlow sees no GPU"):
        runtime.configure(CPU | {"device": "gpu"}, seed=0)
