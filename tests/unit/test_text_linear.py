"""The linear plot branch: scikit-learn's probabilities from plain arrays, outputs, damaged files."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from helpers.builders import CPU, TEXT
from sklearn.linear_model import LogisticRegression

from moviegenre.branches.base import FitContext, Rows
from moviegenre.branches.registry import load_branch
from moviegenre.branches.text_linear import TextLinear
from moviegenre.branches.training import train_branch
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.paths import ProjectPaths
from moviegenre.data.table import load_prepared
from moviegenre.features.store import load_array
from moviegenre.features.text import featurize_text

PATHS = ProjectPaths(Path("."))
SETTINGS = {"features": "tfidf", "C": 2.0, "class_weight": None, "max_iter": 500}


def sparse_problem(rows: int = 60, terms: int = 12) -> tuple[sp.csr_matrix, np.ndarray]:
    rng = np.random.default_rng(0)
    x = sp.random(rows, terms, density=0.3, random_state=1, format="csr")
    labels = np.zeros((rows, 3), dtype=np.uint8)
    labels[:, 0] = np.asarray(x[:, 0].todense()).ravel() > 0  # learnable from term 0
    labels[:, 1] = rng.random(rows) < 0.3
    return x, labels


def test_probabilities_are_scikit_learns_and_a_genre_absent_from_training_is_zero(
    caplog: pytest.LogCaptureFixture,
) -> None:
    x, labels = sparse_problem()
    branch = TextLinear(SETTINGS, 0)
    with caplog.at_level(logging.WARNING):
        branch.fit(Rows(x, labels), Rows(x[:0], labels[:0]), FitContext(["A", "B", "Rare"], CPU))
    assert "Rare" in caplog.text
    proba = branch.predict_proba(x[:7])
    for g in (0, 1):
        reference = LogisticRegression(C=2.0, max_iter=500).fit(x, labels[:, g])
        np.testing.assert_allclose(proba[:, g], reference.predict_proba(x[:7])[:, 1], rtol=1e-12, atol=0)
    assert proba.shape == (7, 3) and (proba[:, 2] < 1e-12).all()
    assert proba[labels[:7, 0] == 1, 0].min() > proba[labels[:7, 0] == 0, 0].max()  # term 0 decides genre A


def test_text_linear_writes_documented_outputs_and_the_same_bytes_twice(prepared_project: Path) -> None:
    table, genres = load_prepared(PATHS.prepared)
    featurize_text(table, TEXT, out_dir=PATHS.features("text"))
    metrics = train_branch(TextLinear(SETTINGS, 0), PATHS, CPU)

    predictions = pd.read_parquet("data/predictions/text_linear.parquet")
    assert list(predictions.columns) == ["id", "split", *genres]
    values = predictions[genres].to_numpy()
    assert ((values >= 0) & (values <= 1)).all()
    assert json.loads(Path("metrics/text_linear.json").read_text()) == metrics
    for split in ("test", "val"):
        assert 0.5 < metrics[split]["roc_auc_macro"] <= 1.0  # the synthetic words are learnable
    model = Path("models/text_linear")
    assert sorted(p.name for p in model.iterdir()) == ["coef.npy", "intercept.npy", "spec.json"]
    spec = json.loads((model / "spec.json").read_text())
    assert spec["branch"] == "text_linear" and spec["arrays"] == ["tfidf"] and spec["genres"] == genres
    first = {p.name: p.read_bytes() for p in model.iterdir()}

    loaded = load_branch(model)
    tfidf = load_array(PATHS.features("text"), "tfidf")
    rows = table.index[table["split"].isin(["val", "test"])].to_numpy()
    np.testing.assert_array_equal(loaded.predict_proba(tfidf[rows]), values)

    train_branch(TextLinear(SETTINGS, 0), PATHS, CPU)
    assert {p.name: p.read_bytes() for p in model.iterdir()} == first


def test_a_damaged_model_file_is_refused_before_it_is_read(prepared_project: Path) -> None:
    table, _ = load_prepared(PATHS.prepared)
    featurize_text(table, TEXT, out_dir=PATHS.features("text"))
    train_branch(TextLinear(SETTINGS, 0), PATHS, CPU)
    coef = Path("models/text_linear/coef.npy")
    damaged = np.load(coef)
    damaged[0, 0] = np.nan
    coef.chmod(0o644)
    np.save(coef, damaged)
    with pytest.raises(MovieGenreError) as caught:
        load_branch(Path("models/text_linear"))
    assert "coef.npy" in str(caught.value) and "\n" not in str(caught.value)


def test_arrays_that_do_not_fit_are_one_error(tmp_path: Path) -> None:
    np.save(tmp_path / "coef.npy", np.zeros((3, 5)))
    np.save(tmp_path / "intercept.npy", np.zeros(4))
    with pytest.raises(MovieGenreError, match="do not fit"):
        TextLinear(SETTINGS, 0).load_model(tmp_path)


def test_a_fit_without_epochs_logs_its_summary_and_no_curve(prepared_project: Path) -> None:
    """Its one fitted state is no curve: dvclive holds params and the train/val AUC summary only,
    and the curves an earlier run left (when such fits logged one point each) go."""
    table, _ = load_prepared(PATHS.prepared)
    featurize_text(table, TEXT, out_dir=PATHS.features("text"))
    live = PATHS.live("text_linear")
    stale = live / "plots" / "metrics" / "val" / "auc.tsv"
    stale.parent.mkdir(parents=True)
    stale.write_text("step\tauc\n0\t0.5\n")
    assert not TextLinear.epochs
    train_branch(TextLinear(SETTINGS, 0), PATHS, CPU)
    assert sorted(p.name for p in live.iterdir()) == ["metrics.json", "params.yaml"]
    summary = json.loads((live / "metrics.json").read_text())
    assert set(summary) == {"train", "val"}  # no step: nothing was logged per step
    assert 0.5 < summary["val"]["auc"] <= summary["train"]["auc"] <= 1.0


def test_a_fit_that_fails_leaves_the_last_good_dvclive_run(
    prepared_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table, _ = load_prepared(PATHS.prepared)
    featurize_text(table, TEXT, out_dir=PATHS.features("text"))
    train_branch(TextLinear(SETTINGS, 0), PATHS, CPU)
    live = PATHS.live("text_linear")
    good = {p.relative_to(live): p.read_bytes() for p in sorted(live.rglob("*")) if p.is_file()}
    assert "C: 2.0" in (live / "params.yaml").read_text()

    def disk_full(self: TextLinear, directory: Path) -> None:
        raise OSError(28, "No space left on device", str(directory / "coef.npy"))

    monkeypatch.setattr(TextLinear, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        train_branch(TextLinear(SETTINGS | {"C": 5.0}, 0), PATHS, CPU)
    assert {p.relative_to(live): p.read_bytes() for p in sorted(live.rglob("*")) if p.is_file()} == good
    assert sorted(p.name for p in live.parent.iterdir()) == ["text_linear"]  # no temporary left behind
