"""Saved models are checked before they are used: a damaged or replaced file is one line, never an answer.

Each case is one a hostile user found on a built project: bytes flipped in a model file (or in
the DVC cache it is restored from), a truncated or empty file, another branch's directory
copied in, a spec or ensemble.json edited by hand.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers.builders import CPU, FOREST, TEXT

from moviegenre.branches import forests
from moviegenre.branches.forests import TextForest
from moviegenre.branches.registry import load_branch
from moviegenre.branches.training import train_branch
from moviegenre.core.digests import file_digests
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.files import read_json
from moviegenre.core.paths import ProjectPaths
from moviegenre.data.table import load_prepared
from moviegenre.ensemble.model import Combiner, EnsembleModel
from moviegenre.features.text import featurize_text
from moviegenre.predict.predictor import check_probabilities

PATHS = ProjectPaths(Path("."))
MODEL = Path("models/text_ml")


@pytest.fixture
def text_model(prepared_project: Path) -> Path:
    table, _ = load_prepared(PATHS.prepared)
    featurize_text(table, TEXT, out_dir=PATHS.features("text"))
    train_branch(TextForest(FOREST | {"features": "tfidf"}, 0), PATHS, CPU)
    return MODEL


def _refused(directory: Path) -> str:
    with pytest.raises(MovieGenreError) as caught:
        load_branch(directory)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_spec_records_every_files_digest_and_a_good_model_loads(text_model: Path) -> None:
    spec = json.loads((text_model / "spec.json").read_text())
    arrays = [file for file, _, _ in forests.ARRAYS.values()]
    assert set(spec["files"]) == {"forest.json", *arrays} and all(len(d) == 64 for d in spec["files"].values())
    assert load_branch(text_model).spec.files == spec["files"]


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty"])
def test_a_damaged_model_file_is_refused_naming_it_and_the_fix(text_model: Path, damage: str) -> None:
    model = text_model / "proba.npy"
    data = bytearray(model.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data[: len(data) // 2] if damage == "truncate" else b"" if damage == "empty" else data))
    message = _refused(text_model)
    assert message.startswith(f"{model}: corrupt or replaced (its sha256 differs from {text_model / 'spec.json'})")
    assert "dvc checkout --force models/text_ml" in message and "dvc repro --force -s train@text_ml" in message


def test_another_branchs_directory_copied_in_is_refused(text_model: Path) -> None:
    spec = json.loads((text_model / "spec.json").read_text())
    other = Path("models/image_ml")
    shutil.copytree(text_model, other)
    (other / "spec.json").write_text(json.dumps(spec))  # text_ml's model and spec under image_ml/
    assert "holds branch 'text_ml', not 'image_ml'" in _refused(other)
    (text_model / "spec.json").write_text(json.dumps(spec | {"branch": "image_ml"}))
    assert "holds branch 'image_ml', not 'text_ml'" in _refused(text_model)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"settings": "x"}, "not a model spec ('settings' must be a mapping, not str 'x'); run `dvc repro`"),
        ({"genres": []}, "not a model spec ('genres' must not be empty)"),
        ({"genres": ["A", "A"]}, "not a model spec ('genres' must be distinct genres, not ['A', 'A'])"),
        ({"files": {"forest.json": "abc"}}, "not a model spec ('files' has a bad sha256 for forest.json)"),
        ({"files": {"../x": "0" * 64}}, "not a model spec ('files' has a bad file name '../x')"),
        ({"extra": 1}, "not a model spec (unknown field 'extra'"),
    ],
)
def test_a_spec_with_fields_of_the_wrong_kind_is_one_line(text_model: Path, edit: dict, message: str) -> None:
    spec = json.loads((text_model / "spec.json").read_text())
    (text_model / "spec.json").write_text(json.dumps(spec | edit))
    assert message in _refused(text_model)


def test_a_spec_without_digests_names_the_stage_that_rebuilds_it(text_model: Path) -> None:
    spec = json.loads((text_model / "spec.json").read_text())
    del spec["files"]
    (text_model / "spec.json").write_text(json.dumps(spec))
    assert "records no digest of forest.json (written by an older version); run `dvc repro -s train@text_ml`" in (
        _refused(text_model)
    )


def test_an_older_versions_pickled_forest_is_refused_unread(text_model: Path) -> None:
    """A model directory from before the .npy format: its spec's digests name a pickled
    ``model.joblib`` only. It is refused in one line naming the stage that rebuilds it, and the
    pickle is never loaded."""
    import pickle

    marker = Path("unpickled")
    spec = json.loads((text_model / "spec.json").read_text())
    for path in text_model.iterdir():
        path.unlink()
    (text_model / "model.joblib").write_bytes(pickle.dumps(_Touch(marker)))
    spec["files"] = file_digests(text_model)
    (text_model / "spec.json").write_text(json.dumps(spec))
    assert _refused(text_model) == (
        f"{text_model / 'spec.json'}: records no digest of forest.json (written by an older version); "
        "run `dvc repro -s train@text_ml`"
    )
    assert not marker.exists()


def test_a_forest_made_by_hand_with_matching_digests_is_checked_before_use(text_model: Path) -> None:
    """Digests catch damage, not a file written to match its spec: the forest's arrays are
    checked too, so a child pointing back to the root (an endless walk) is one line naming the file."""
    children = np.load(text_model / "children.npy")
    children[children[:, 0] >= 0, 0] = 0
    np.save(text_model / "children.npy", children)
    spec = json.loads((text_model / "spec.json").read_text())
    spec["files"] = file_digests(text_model, exclude=("spec.json",))
    (text_model / "spec.json").write_text(json.dumps(spec))
    assert _refused(text_model) == (
        f"{text_model / 'children.npy'}: a child that is not a later node of its own tree; "
        "run `dvc repro -s train@text_ml`"
    )


class _Touch:
    """Unpickled, it creates ``path``: the harm a pickled file could do, made visible."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.path,))


def test_a_garbled_spec_is_one_line(text_model: Path) -> None:
    (text_model / "spec.json").write_text('{"branch": ' + "[" * 100_000)
    assert "spec.json: not valid JSON" in _refused(text_model)


def _ensemble(directory: Path) -> EnsembleModel:
    model = EnsembleModel(
        "weighted", ["A", "B"],
        [Combiner(["text_ml", "image_ml"], [0.3, 0.5], weights={"text_ml": 0.6, "image_ml": 0.4}),
         Combiner(["text_ml"], [0.4, 0.4], weights={"text_ml": 1.0})], "logits",
    )  # fmt: skip
    model.save(directory)
    return model


def test_a_saved_ensemble_loads_as_it_was(tmp_path: Path) -> None:
    model = _ensemble(tmp_path / "ensemble")
    assert EnsembleModel.load(tmp_path / "ensemble") == model


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["combiners"][0]["weights"].update(text_ml=-1),
            "'combiners[0].weights.text_ml' must be >= 0, not -1",
        ),
        (
            lambda d: d["combiners"][0]["weights"].update(text_ml=0, image_ml=0),
            "combiners[0]: weights must not be all zero",
        ),
        (lambda d: d["combiners"][0]["branches"].remove("image_ml"), "weights must give one number per branch"),
        (lambda d: d.update(method="bogus"), "'method' must be 'mean', 'weighted', 'val' or 'stack', not 'bogus'"),
        (lambda d: d.update(average="median"), "'average' must be 'probabilities' or 'logits', not 'median'"),
        (lambda d: d.pop("average"), "not an ensemble model (missing field 'average'); run `dvc repro -s ensemble`"),
        (lambda d: d.update(combiners=[]), "'combiners' must not be empty"),
        (lambda d: d["combiners"][1].update(thresholds=[0.5]), "combiners[1]: thresholds must be a list of 2"),
        (
            lambda d: d["combiners"][1].update(thresholds=[0.5, 1.5]),
            "'combiners[1].thresholds[1]' must be <= 1, not 1.5",
        ),
        (lambda d: d["combiners"][1].update(branches=["fusion"]), "a subset of the first combiner's"),
    ],
)
def test_an_edited_ensemble_is_refused_by_digest_and_by_schema(tmp_path: Path, edit, message: str) -> None:
    directory = tmp_path / "ensemble"
    _ensemble(directory)
    path = directory / "ensemble.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(MovieGenreError, match="corrupt or replaced") as caught:
        EnsembleModel.load(directory)  # the edit alone: its digest no longer matches
    assert "dvc checkout --force" in str(caught.value)
    digests = directory / "digests.json"
    from moviegenre.core.digests import sha256_file

    digests.write_text(json.dumps({"ensemble.json": sha256_file(path)}))  # the digest edited too
    with pytest.raises(MovieGenreError) as caught:
        EnsembleModel.load(directory)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_nan_weights_are_not_json_numbers(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"weights": {"text_ml": NaN}}')
    with pytest.raises(MovieGenreError, match=r"x.json: not valid JSON \(NaN is not a number\); run it"):
        read_json(path, "run it")


def test_probabilities_outside_0_1_are_never_output() -> None:
    good = np.array([[0.0, 0.5, 1.0]])
    assert check_probabilities(good, "models/x") is good
    for bad in (8.8e187, -0.1, np.nan, np.inf):
        with pytest.raises(MovieGenreError, match="where a probability belongs"):
            check_probabilities(np.array([[0.2, bad]]), "models/x")
