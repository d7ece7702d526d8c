"""Classical branches: multi-label probabilities, genres absent from training, outputs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_features import TEXT

from moviegenre import forests
from moviegenre.classical import run_forest_branch
from moviegenre.dataset import load_prepared
from moviegenre.feature_index import load_index
from moviegenre.text_features import TFIDF, featurize_text, load_matrix

SETTINGS = {"features": "tfidf", "n_estimators": 20, "max_depth": None, "max_features": "sqrt", "min_samples_leaf": 1,
            "class_weight": None, "n_jobs": 1}  # fmt: skip


@pytest.mark.parametrize("kind", ["extra_trees", "random_forest"])
def test_genre_absent_from_training_is_reported_and_predicted_zero(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 5))
    labels = np.zeros((40, 3), dtype=np.uint8)
    labels[:, 0] = features[:, 0] > 0
    labels[:, 2] = 1  # all positive
    with caplog.at_level(logging.WARNING):
        model = forests.fit(forests.make_forest(kind, SETTINGS, 0), features, labels, ["A", "Rare", "All"])
    assert "Rare" in caplog.text
    proba = forests.positive_proba(model, features[:7])
    assert proba.shape == (7, 3)
    assert (proba[:, 1] == 0).all() and (proba[:, 2] == 1).all()
    assert ((proba >= 0) & (proba <= 1)).all()


def test_text_branch_writes_documented_outputs(prepared_project: Path) -> None:
    table, genres = load_prepared()
    featurize_text(table, TEXT, out_dir=Path("data/features/text"))
    index = load_index(Path("data/features/text"))
    metrics = run_forest_branch(
        "text_ml", "random_forest", load_matrix(Path("data/features/text"), TFIDF), index, SETTINGS, 0
    )

    predictions = pd.read_parquet("data/predictions/text_ml.parquet")
    assert list(predictions.columns) == ["id", "split", *genres]
    scored = table[table["split"].isin(["val", "test"])]
    assert predictions["id"].tolist() == scored["id"].tolist()
    values = predictions[genres].to_numpy()
    assert ((values >= 0) & (values <= 1)).all()

    written = json.loads(Path("metrics/text_ml.json").read_text())
    assert written == metrics
    assert set(written) == {"test", "val", "seconds"}
    for split in ("test", "val"):
        assert set(written[split]) == {"roc_auc_macro", "roc_auc_micro", "n_movies", "n_genres"}
        assert 0.5 < written[split]["roc_auc_macro"] <= 1.0  # the synthetic words are learnable
    assert written["test"]["n_movies"] == (table["split"] == "test").sum()
    assert Path("models/text_ml.joblib").stat().st_size > 0
