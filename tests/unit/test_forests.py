"""Classical branches: multi-label probabilities, genres absent from training, outputs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.builders import CPU, IMAGES, TEXT

from moviegenre.branches import forests
from moviegenre.branches.base import FitContext
from moviegenre.branches.forests import ImageForest, TextForest
from moviegenre.branches.registry import load_branch
from moviegenre.branches.training import train_branch
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.paths import ProjectPaths
from moviegenre.data.table import load_prepared
from moviegenre.features.images import featurize_images
from moviegenre.features.sets import features_fingerprint
from moviegenre.features.store import load_array
from moviegenre.features.text import featurize_text

PATHS = ProjectPaths(Path("."))

SETTINGS = {"features": "tfidf", "n_estimators": 20, "max_depth": None, "max_features": "sqrt", "min_samples_leaf": 1,
            "class_weight": None}  # fmt: skip


def _features(branch_class: type) -> str:
    return "pca" if branch_class is ImageForest else "tfidf"


@pytest.mark.parametrize("branch_class", [ImageForest, TextForest])
def test_genre_absent_from_training_is_reported_and_predicted_zero(
    branch_class: type, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 5))
    labels = np.zeros((40, 3), dtype=np.uint8)
    labels[:, 0] = features[:, 0] > 0
    labels[:, 2] = 1  # all positive
    with caplog.at_level(logging.WARNING):
        branch = branch_class(SETTINGS | {"features": _features(branch_class)}, 0)
        branch.fit(features, labels, np.array(["train"] * 40), FitContext(["A", "Rare", "All"], CPU))
    assert "Rare" in caplog.text
    proba = branch.predict_proba(features[:7])
    one_shot = branch.make().fit(features, labels)
    np.testing.assert_array_equal(proba, forests.positive_proba(one_shot, features[:7]))
    assert proba.shape == (7, 3)
    assert (proba[:, 1] == 0).all() and (proba[:, 2] == 1).all()
    assert ((proba >= 0) & (proba <= 1)).all()


@pytest.mark.parametrize("branch_class", [ImageForest, TextForest])
@pytest.mark.parametrize("sparse", [False, True])
def test_growing_the_forest_in_batches_gives_the_one_shot_forest(
    branch_class: type, sparse: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import scipy.sparse as sp

    monkeypatch.setattr(forests, "FIT_BATCH", 7)  # 20 trees: batches of 7, 7 and 6
    rng = np.random.default_rng(1)
    features = rng.random((60, 12)) * (rng.random((60, 12)) < 0.4)
    labels = np.stack([features[:, 0] > 0.2, features[:, 1] + features[:, 2] > 0.5, rng.random(60) < 0.3], axis=1)
    x = sp.csr_matrix(features) if sparse else features
    branch = branch_class(SETTINGS | {"features": _features(branch_class), "max_features": 3}, 5)
    batched = branch.fit_flat(x, labels.astype(np.uint8))
    one_shot = forests.FlatForest.from_sklearn(branch.make().fit(x, labels.astype(np.uint8)))
    assert len(batched.roots) == 20
    for name in one_shot.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(batched, name), getattr(one_shot, name), err_msg=name)
    np.testing.assert_array_equal(batched.predict(x), forests.positive_proba(branch.make().fit(x, labels), x))


def test_text_branch_writes_documented_outputs(prepared_project: Path) -> None:
    table, genres = load_prepared(PATHS.prepared)
    featurize_text(table, TEXT, out_dir=PATHS.features("text"))
    metrics = train_branch(TextForest(SETTINGS, 0), PATHS, CPU)

    predictions = pd.read_parquet("data/predictions/text_ml.parquet")
    assert list(predictions.columns) == ["id", "split", *genres]
    scored = table[table["split"].isin(["val", "test"])]
    assert predictions["id"].tolist() == scored["id"].tolist()
    values = predictions[genres].to_numpy()
    assert ((values >= 0) & (values <= 1)).all()

    written = json.loads(Path("metrics/text_ml.json").read_text())
    assert written == metrics
    assert set(written) == {"test", "val"}
    timings = json.loads(Path("metrics/timings/text_ml.json").read_text())
    assert set(timings) == {"seconds", "machine"} and set(timings["machine"]) == {"blas", "cpu_flags"}
    assert all(kernel.startswith("openblas ") for kernel in timings["machine"]["blas"])  # numpy's, at least
    for split in ("test", "val"):
        assert set(written[split]) == {"roc_auc_macro", "roc_auc_macro_ci95", "roc_auc_micro", "n_movies", "n_genres"}
        assert 0.5 < written[split]["roc_auc_macro"] <= 1.0  # the synthetic words are learnable
    assert written["test"]["n_movies"] == (table["split"] == "test").sum()
    assert Path("models/text_ml/model.joblib").stat().st_size > 0
    spec = json.loads(Path("models/text_ml/spec.json").read_text())
    assert spec["branch"] == "text_ml" and spec["feature_set"] == "text" and spec["arrays"] == ["tfidf"]
    assert spec["genres"] == genres and len(spec["features_fingerprint"]) == 16
    # the model loads itself from its directory and predicts what the stage stored
    loaded = load_branch(Path("models/text_ml"))
    tfidf = load_array(PATHS.features("text"), "tfidf")
    rows = table.index[table["split"].isin(["val", "test"])].to_numpy()
    np.testing.assert_allclose(loaded.predict_proba(tfidf[rows]), values, atol=1e-12)


def test_model_trained_on_other_features_is_refused_in_one_line(prepared_project: Path) -> None:
    table, _ = load_prepared(PATHS.prepared)
    images = PATHS.features("images")
    featurize_images(table, IMAGES, seed=0, out_dir=images)
    settings = SETTINGS | {"features": "pca+color"}
    train_branch(ImageForest(settings, 0), PATHS, CPU)
    featurize_images(table, IMAGES | {"pca_components": 5}, seed=0, out_dir=images)  # 8 -> 5 components

    branch = load_branch(Path("models/image_ml"))
    arrays = {name: load_array(images, name) for name in branch.reads()}
    with pytest.raises(MovieGenreError) as caught:
        branch.check_features(Path("models/image_ml"), arrays, features_fingerprint("images", images, branch.reads()))
    message = str(caught.value)
    assert "models/image_ml was trained on 89 features (pca 8 + colour 81)" in message
    assert "now gives 86 (pca 5 + colour 81)" in message and message.endswith("run `dvc repro`")
    assert "\n" not in message


@pytest.mark.parametrize("estimator", ["ExtraTreesClassifier", "RandomForestClassifier"])
@pytest.mark.parametrize("sparse", [False, True])
def test_flat_forest_gives_scikit_learns_probabilities_on_both_walks(
    tmp_path: Path, estimator: str, sparse: bool
) -> None:
    """A few rows walk the flat trees in numpy, many go through scikit-learn's compiled walk:
    both must give exactly what the fitted forest gives, also after a save and a memory-mapped load."""
    import scipy.sparse as sp
    from sklearn import ensemble

    rng = np.random.default_rng(5)
    x = rng.random((300, 12)).astype(np.float32)
    x[x < 0.6] = 0.0  # sparse-looking, like TF-IDF
    y = np.c_[x[:, 0] + x[:, 1] > 0.6, x[:, 2] > 0.5, np.zeros(300)].astype(int)  # the last genre never positive
    fitted = getattr(ensemble, estimator)(n_estimators=15, random_state=0).fit(x, y)
    features = sp.csr_matrix(x) if sparse else x
    flat = forests.FlatForest.from_sklearn(fitted)
    flat.save(tmp_path / "model.joblib")
    loaded = forests.FlatForest.load(tmp_path / "model.joblib")
    for rows in (slice(0, 3), slice(0, 17), slice(None)):  # numpy walk, compiled walk, several chunks
        expected = forests.positive_proba(fitted, features[rows])
        np.testing.assert_array_equal(flat.predict(features[rows]), expected)
        np.testing.assert_array_equal(loaded.predict(features[rows]), expected)
