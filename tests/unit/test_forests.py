"""Classical branches: multi-label probabilities, genres absent from training, outputs."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers.builders import CPU, IMAGES, TEXT

from moviegenre.branches import forests
from moviegenre.branches.base import FitContext, Rows
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
        branch.fit(Rows(features, labels), Rows(features[:0], labels[:0]), FitContext(["A", "Rare", "All"], CPU))
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
    assert set(timings) == {"seconds", "machine", "engine"} and set(timings["machine"]) == {"blas", "cpu_flags"}
    assert timings["engine"] == "in-process"  # no cluster named: the fit ran here
    assert all(kernel.startswith("openblas ") for kernel in timings["machine"]["blas"])  # numpy's, at least
    for split in ("test", "val"):
        assert set(written[split]) == {"roc_auc_macro", "roc_auc_macro_ci95", "roc_auc_micro", "n_movies", "n_genres"}
        assert 0.5 < written[split]["roc_auc_macro"] <= 1.0  # the synthetic words are learnable
    assert written["test"]["n_movies"] == (table["split"] == "test").sum()
    assert sorted(p.name for p in Path("models/text_ml").iterdir()) == sorted(
        [forests.HEADER, "spec.json", *(file for file, _, _ in forests.ARRAYS.values())]
    )
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
    featurize_images(
        table, IMAGES.model_copy(update={"pca_components": 5}), seed=0, out_dir=images
    )  # 8 -> 5 components

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
def test_flat_forest_gives_scikit_learns_probabilities(tmp_path: Path, estimator: str, sparse: bool) -> None:
    """The numpy walk gives exactly what the fitted forest gives, for a few rows and for several
    blocks of rows, also after a save and a memory-mapped load."""
    import scipy.sparse as sp
    from sklearn import ensemble

    rng = np.random.default_rng(5)
    x = rng.random((300, 12)).astype(np.float32)
    x[x < 0.6] = 0.0  # sparse-looking, like TF-IDF
    y = np.c_[x[:, 0] + x[:, 1] > 0.6, x[:, 2] > 0.5, np.zeros(300)].astype(int)  # the last genre never positive
    fitted = getattr(ensemble, estimator)(n_estimators=15, random_state=0).fit(x, y)
    features = sp.csr_matrix(x) if sparse else x
    flat = forests.FlatForest.from_sklearn(fitted)
    flat.save(tmp_path)
    loaded = forests.FlatForest.load(tmp_path)
    assert isinstance(loaded.proba, np.memmap) and isinstance(loaded.children, np.memmap)
    for rows in (slice(0, 3), slice(0, 17), slice(None)):  # a few rows, one block, two blocks of 256
        expected = forests.positive_proba(fitted, features[rows])
        np.testing.assert_array_equal(flat.predict(features[rows]), expected)
        np.testing.assert_array_equal(loaded.predict(features[rows]), expected)


@pytest.mark.parametrize("estimator", ["ExtraTreesClassifier", "RandomForestClassifier"])
def test_missing_values_go_where_scikit_learn_sends_them(estimator: str) -> None:
    from sklearn import ensemble

    rng = np.random.default_rng(6)
    x = rng.random((200, 6)).astype(np.float32)
    y = np.c_[x[:, 0] > 0.5, x[:, 1] + x[:, 2] > 1].astype(int)
    x[rng.random(x.shape) < 0.2] = np.nan  # trees learn where a NaN goes at each split
    fitted = getattr(ensemble, estimator)(n_estimators=10, random_state=0).fit(x, y)
    flat = forests.FlatForest.from_sklearn(fitted)
    assert flat.missing_left.any() and not flat.missing_left.all()
    for rows in (slice(0, 5), slice(None)):
        np.testing.assert_array_equal(flat.predict(x[rows]), forests.positive_proba(fitted, x[rows]))


def _small_forest(directory: Path) -> forests.FlatForest:
    """A saved ExtraTrees forest of 4 trees on 5 features and 2 genres."""
    from sklearn.ensemble import ExtraTreesClassifier

    rng = np.random.default_rng(7)
    x = rng.random((60, 5))
    y = np.c_[x[:, 0] > 0.5, x[:, 1] > 0.3].astype(int)
    flat = forests.FlatForest.from_sklearn(ExtraTreesClassifier(n_estimators=4, random_state=0).fit(x, y))
    directory.mkdir(exist_ok=True)
    flat.save(directory)
    return flat


def test_a_saved_forest_loads_and_saves_to_the_same_bytes_without_scikit_learn(tmp_path: Path) -> None:
    """Loading and predicting import neither scikit-learn (its private tree classes included) nor
    joblib: nothing but ``.npy`` arrays and a JSON header is read."""
    import subprocess
    import sys

    flat = _small_forest(tmp_path / "a")
    (tmp_path / "b").mkdir()
    forests.FlatForest.load(tmp_path / "a").save(tmp_path / "b")
    for file in [forests.HEADER, *(file for file, _, _ in forests.ARRAYS.values())]:
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file
    x = np.random.default_rng(8).random((300, 5)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    script = (
        "import sys\n"
        "import numpy as np, scipy.sparse as sp\n"
        "from pathlib import Path\n"
        "from moviegenre.branches.forests import FlatForest\n"
        "forest = FlatForest.load(Path(sys.argv[1]) / 'a')\n"
        "x = np.load(Path(sys.argv[1]) / 'x.npy')\n"
        "np.save(Path(sys.argv[1]) / 'dense.npy', forest.predict(x))\n"
        "np.save(Path(sys.argv[1]) / 'sparse.npy', forest.predict(sp.csr_matrix(x)))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'joblib')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    for name in ("dense", "sparse"):
        np.testing.assert_array_equal(np.load(tmp_path / f"{name}.npy"), flat.predict(x))


class _Touch:
    """Unpickled, it creates ``path``: the harm a pickled file could do, made visible."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.path,))


def test_a_pickled_forest_is_refused_unread(tmp_path: Path) -> None:
    """An older version's model directory held a pickled forest: it is named, with the fix, and
    never unpickled; nor is a pickle or an object array saved under an array's name."""
    import pickle

    marker = tmp_path / "unpickled"
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / forests.LEGACY_MODEL).write_bytes(pickle.dumps(_Touch(marker)))
    with pytest.raises(MovieGenreError) as caught:
        forests.FlatForest.load(legacy, "run `dvc repro -s train@image_ml`")
    assert str(caught.value) == (
        f"{legacy / 'model.joblib'}: a pickled forest written by an older version, which is not loaded; "
        "run `dvc repro -s train@image_ml`"
    )
    for name, payload in (("pickle", pickle.dumps(_Touch(marker))), ("object array", None)):
        directory = tmp_path / name
        _small_forest(directory)
        if payload is None:
            np.save(directory / "proba.npy", np.array([_Touch(marker)], dtype=object), allow_pickle=True)
        else:
            (directory / "proba.npy").write_bytes(payload)
        with pytest.raises(MovieGenreError, match=rf"^{directory / 'proba.npy'}: not a readable numpy array \("):
            forests.FlatForest.load(directory)
    assert not marker.exists()


def _damage(directory: Path, flat: forests.FlatForest, damage: str) -> str:
    """Rewrite one file of a saved forest as ``damage`` says; return the file's name."""
    header = json.loads((directory / forests.HEADER).read_text())
    inner = int(np.flatnonzero(flat.feature >= 0)[1])  # an inner node of the first tree, not its root
    back_to_root, into_next_tree = flat.children.copy(), flat.children.copy()
    back_to_root[inner] = 0
    into_next_tree[0] = flat.roots[1]
    first_node = np.arange(len(flat.feature)) == 0
    third_leaf = (np.arange(len(flat.proba)) == 2)[:, None]
    edits: dict[str, tuple[str, Any]] = {
        "another format": (forests.HEADER, header | {"format": "moviegenre-flat-forest-1"}),
        "a count that is not one": (forests.HEADER, header | {"n_trees": 4.0}),
        "an unknown field": (forests.HEADER, header | {"pickle": True}),
        "int64 children": ("children.npy", flat.children.astype(np.int64)),
        "a genre short": ("proba.npy", flat.proba[:, :1]),
        "a node too many": ("feature.npy", np.append(flat.feature, -1).astype(np.int32)),
        "roots out of order": ("roots.npy", flat.roots[::-1].copy()),
        "a feature that does not exist": ("feature.npy", np.where(first_node, 5, flat.feature).astype(np.int32)),
        "a child back to its root": ("children.npy", back_to_root),
        "a child in the next tree": ("children.npy", into_next_tree),
        "a leaf row out of range": ("leaf.npy", np.where(flat.leaf == flat.leaf.max(), len(flat.proba), flat.leaf)),
        "a NaN threshold": ("threshold.npy", np.where(first_node, np.nan, flat.threshold)),
        "a probability of 1.5": ("proba.npy", np.where(third_leaf, 1.5, flat.proba)),
        "a NaN probability": ("proba.npy", np.where(third_leaf, np.nan, flat.proba)),
    }
    name, content = edits[damage]
    if name == forests.HEADER:
        (directory / name).write_text(json.dumps(content))
    else:
        np.save(directory / name, content)
    return name


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("another format", "not a flat forest of format moviegenre-flat-forest-2 ('moviegenre-flat-forest-1')"),
        ("a count that is not one", "n_trees is 4.0, not a positive integer"),
        ("an unknown field", "fields ['format', 'n_features', 'n_genres', 'n_leaves', 'n_nodes', 'n_trees', 'pickle']"),
        ("int64 children", "int64 ("),
        ("a genre short", "float64 ("),
        ("a node too many", "int32 ("),
        ("roots out of order", "not increasing tree starts from 0"),
        ("a feature that does not exist", "a feature outside -1 (a leaf) to 4"),
        ("a child back to its root", "a child that is not a later node of its own tree"),
        ("a child in the next tree", "a child that is not a later node of its own tree"),
        ("a leaf row out of range", "leaves not numbered 0 to"),
        ("a NaN threshold", "a threshold that is not a finite number"),
        ("a probability of 1.5", "a probability that is not a number in [0, 1]"),
        ("a NaN probability", "a probability that is not a number in [0, 1]"),
    ],
)
def test_a_damaged_forest_is_one_line_naming_its_file(tmp_path: Path, damage: str, reason: str) -> None:
    """Every file is checked before the walk uses it: a forest that a digest would not catch (one
    written by hand, its digests recomputed) cannot loop forever, read out of bounds or answer
    something that is not a probability."""
    flat = _small_forest(tmp_path)
    name = _damage(tmp_path, flat, damage)
    with pytest.raises(MovieGenreError) as caught:
        forests.FlatForest.load(tmp_path, "run `dvc repro -s train@image_ml`")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / name}: {reason}"), message
    assert message.endswith("; run `dvc repro -s train@image_ml`") and "\n" not in message
