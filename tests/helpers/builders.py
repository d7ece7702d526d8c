"""Small settings for tiny generated data, and the checks every trained Keras branch must pass."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers import PROJECT_ROOT
from moviegenre.branches.registry import load_branch
from moviegenre.branches.training import load_aligned
from moviegenre.config.params import load_settings
from moviegenre.config.runtime import RuntimeSettings
from moviegenre.core.paths import ProjectPaths
from moviegenre.data.table import load_prepared
from moviegenre.download.archives import Limits
from moviegenre.download.settings import DataSettings
from moviegenre.features.images import ImagesSettings
from moviegenre.features.sentence_encoder import EmbedTextSettings
from moviegenre.features.text import TextSettings

PATHS = ProjectPaths(Path("."))

IMAGES = ImagesSettings(height=48, width=32, pca_components=8, workers=2)
TEXT = TextSettings.model_validate({
    "tfidf": {"ngram_max": 2, "min_df": 1, "max_df": 1.0, "max_features": None, "sublinear_tf": True,
              "stop_words": "english"},
    "counts": {"ngram_max": 2, "min_df": 1, "max_features": 500, "stop_words": "english"},
    "sequences": {"vocab_size": 100, "length": 12},
})  # fmt: skip
DATA = load_settings(DataSettings, "data", PROJECT_ROOT / "params.yaml")
LIMITS = Limits.from_params(DATA)  # the archive limits params.yaml ships


def data_settings(source: Path | str, **changes: Any) -> DataSettings:
    """params.yaml's data section for ``source`` (no sha256 to check), quick to fail, with ``changes``."""
    quick = {"source": str(source), "sha256": None, "poster_workers": 2, "timeout_s": 5, "retries": 0}
    return DataSettings.model_validate(DATA.model_dump() | quick | changes)


def embed_settings(preset: Path | str, **changes: Any) -> EmbedTextSettings:
    """An embed_text section for a tiny preset: plots cut at 32 tokens, float32."""
    tiny = {"preset": str(preset), "sha256": None, "sequence_length": 32, "long_texts": "cut", "batch_size": 16,
            "precision": "float32"}  # fmt: skip
    return EmbedTextSettings.model_validate(tiny | changes)


CPU = RuntimeSettings(
    device="cpu", mixed_precision=True, deterministic=True, intra_op_threads=0, inter_op_threads=0, n_jobs=1
)
TRAINING = {"epochs": 1, "batch_size": 16, "learning_rate": 0.001, "weight_decay": 0.0001, "lr_patience": 1,
            "dropout": 0.2, "patience": 1}  # fmt: skip
NO_BACKBONE = {"name": "none", "weights": "imagenet", "freeze": True, "input_size": None, "warmup_epochs": 1,
               "fine_tune_learning_rate": 0.0001}  # fmt: skip
IMAGE_DL = TRAINING | {"arch": "bn_gap", "channels": 3, "augment": True, "downsample": 2, "backbone": NO_BACKBONE}
TEXT_DL = TRAINING | {"arch": "mlp", "weight_decay": 0.0, "lr_patience": 0, "hidden_units": 16,
                      "embedding": "learned", "embedding_trainable": True, "embedding_dim": 8, "lstm_units": 8,
                      "conv_filters": 8, "kernel_size": 3, "pool_size": 2}  # fmt: skip
FOREST = {"n_estimators": 20, "max_depth": None, "max_features": "sqrt", "min_samples_leaf": 1, "class_weight": None}

WORD_TEXT = (
    "the a an man woman boy girl dog cat love war space ship robot killer detective city night day story "
    "of and in on his her their with who finds must save world family secret town . ,"
)
WORDS = WORD_TEXT.split()
SHORT = "a dog ."
LONG = " ".join(["the detective finds a secret in the city at night ."] * 8)
TEXTS = [SHORT, LONG, "a man and his dog", "", "love and war in space , on a ship with a robot", "the cat"]


def check_keras_outputs(branch: str, metrics: dict) -> None:
    """A Keras branch's stage outputs, as documented: model, predictions, metrics, timings, dvclive, reload."""
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
    index = pd.read_csv(PATHS.features(loaded.feature_set) / "index.csv", dtype={"id": str})
    arrays = load_aligned(loaded, PATHS, index["id"])  # another set's arrays at the same movies
    rows = np.flatnonzero(index["split"].isin(["val", "test"]).to_numpy())
    np.testing.assert_allclose(loaded.predict_proba(loaded.inputs(arrays)[rows]), values, atol=1e-6)
