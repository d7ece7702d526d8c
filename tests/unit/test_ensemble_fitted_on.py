"""The ensemble names the branch models it was fitted with, and prediction refuses any other."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers.builders import CPU, TEXT
from pydantic import ValidationError
from typer.testing import CliRunner

from moviegenre.branches.forests import TextForest
from moviegenre.branches.text_linear import TextLinear
from moviegenre.branches.training import train_branch
from moviegenre.cli.app import app
from moviegenre.config.settings import explain
from moviegenre.core.digests import sha256_file
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.paths import ProjectPaths
from moviegenre.data.table import load_prepared
from moviegenre.ensemble.model import EnsembleFile
from moviegenre.ensemble.run import run_ensemble
from moviegenre.ensemble.settings import EnsembleSettings
from moviegenre.features.text import featurize_text
from moviegenre.predict.predictor import Predictor

PATHS = ProjectPaths(Path("."))
LINEAR = {"features": "tfidf", "C": 2.0, "class_weight": None, "max_iter": 500}
FOREST = {"features": "tfidf", "n_estimators": 20, "max_depth": None, "max_features": "sqrt", "min_samples_leaf": 1,
          "class_weight": None}  # fmt: skip
BRANCHES = ["text_ml", "text_linear"]
ENSEMBLE = EnsembleSettings(
    method="val",
    average="probabilities",
    weights=dict.fromkeys(BRANCHES, 1.0),
    branches=tuple(BRANCHES),
    stack_C=1.0,
    stack_folds=3,
    thresholds="rate",
)
PLOT = "ghost blood scream haunted demon in the city"
STALE = (
    "models/text_linear: not the model models/ensemble was fitted with (retrained or checked out since); "
    "run `dvc repro --force -s ensemble` to refit the ensemble on it"
)


@pytest.fixture
def fitted(prepared_project: Path) -> Path:
    """Two plot branches trained and the ensemble fitted on them, as `dvc repro` leaves them."""
    table, _ = load_prepared(PATHS.prepared)
    featurize_text(table, TEXT, out_dir=PATHS.features("text"))
    train_branch(TextForest(FOREST, 0), PATHS, CPU)
    train_branch(TextLinear(LINEAR, 0), PATHS, CPU)
    run_ensemble(ENSEMBLE, 0, PATHS)
    return prepared_project


def test_the_ensemble_records_the_spec_of_each_branch_it_was_fitted_with(fitted: Path) -> None:
    model = json.loads((PATHS.model("ensemble") / "ensemble.json").read_text())
    assert model["fitted_on"] == {b: sha256_file(PATHS.model(b) / "spec.json") for b in BRANCHES}


def test_a_branch_retrained_after_the_ensemble_is_refused_until_the_ensemble_is_refitted(fitted: Path) -> None:
    before = Predictor(PATHS, ("plot",)).predict([None], [PLOT])["ensemble"]
    train_branch(TextLinear(LINEAR | {"C": 0.05}, 0), PATHS, CPU)  # `dvc repro train@text_linear` alone

    with pytest.raises(MovieGenreError) as caught:
        Predictor(PATHS, ("plot",))
    assert str(caught.value) == STALE
    result = CliRunner().invoke(app, ["predict", "--plot", PLOT])
    assert result.exit_code == 2 and result.stderr.splitlines() == [f"error: {STALE}"] and result.stdout == ""

    run_ensemble(ENSEMBLE, 0, PATHS)  # the ensemble stage, as `dvc repro` runs it next
    after = Predictor(PATHS, ("plot",)).predict([None], [PLOT])["ensemble"]
    assert not np.allclose(before, after)


def test_the_same_branch_trained_again_is_the_same_model(fitted: Path) -> None:
    before = Predictor(PATHS, ("plot",)).predict([None], [PLOT])["ensemble"]
    train_branch(TextLinear(LINEAR, 0), PATHS, CPU)  # byte-reproducible: the spec, and its digest, are unchanged
    np.testing.assert_array_equal(Predictor(PATHS, ("plot",)).predict([None], [PLOT])["ensemble"], before)


@pytest.mark.parametrize(
    ("fitted_on", "problem"),
    [
        ({"fusion": "0" * 64}, "fitted_on must map branches of the first combiner to their spec's sha256"),
        ({"text_ml": "not a digest"}, "fitted_on: a bad sha256 for text_ml"),
        ([], "'fitted_on' must be a mapping, not list []"),
    ],
)
def test_fitted_on_is_checked_with_the_rest_of_ensemble_json(fitted: Path, fitted_on: object, problem: str) -> None:
    model = json.loads((PATHS.model("ensemble") / "ensemble.json").read_text())
    assert _problem(model) is None
    assert _problem(model | {"fitted_on": fitted_on}) == problem
    assert _problem({k: v for k, v in model.items() if k != "fitted_on"}) == "missing field 'fitted_on'"


def _problem(data: object) -> str | None:
    """What EnsembleModel.load says of ``data`` (between its file name and the command to run)."""
    try:
        EnsembleFile.model_validate(data)
    except ValidationError as exc:
        return explain(exc, EnsembleFile, entries="field")
    return None
