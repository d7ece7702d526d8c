"""The Branch interface, held to by every branch of the registry, on tiny generated data.

Each branch trains through the train stage's skeleton (``train_branch``) at its smallest
settings; its saved directory loads back as the same model (the probabilities the stage wrote,
bit for bit, and no state on the fitted branch that loading does not restore), says the
modality the registry lists, and refuses a changed model file in one line. A second run
poisons the test rows (NaN in float features, -1 in token ids and labels, a marker row in
pixels) and wraps every method of the branch: none of them may be handed a test row before the
fit is over, and the first to be handed one is the scoring after it.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml
from helpers.builders import CPU, PATHS
from helpers.every_branch import SMALLER, tiny_settings, write_fake_embeddings

from moviegenre.branches import training
from moviegenre.branches.base import Branch, InputParts, Rows
from moviegenre.branches.registry import NAMES, REGISTRY, branch_class, load_branch
from moviegenre.branches.training import load_aligned, train_branch
from moviegenre.core.errors import MovieGenreError
from moviegenre.data.table import load_prepared
from moviegenre.features.store import load_index

SCORED = ["val", "test"]


@pytest.fixture
def every_set(featurized: Path) -> Path:
    """``featurized`` plus the plot and poster embedding sets: every branch's features."""
    write_fake_embeddings()
    return featurized


def test_every_registered_branch_has_its_tiny_settings() -> None:
    assert set(SMALLER) == set(NAMES) == set(yaml.safe_load(REGISTRY.read_text())["branches"])


@pytest.mark.parametrize("name", NAMES)
def test_a_trained_branch_reloads_as_the_same_model_and_refuses_a_changed_file(every_set: Path, name: str) -> None:
    cls = branch_class(name)
    trained = cls(tiny_settings(name), 0)
    metrics = train_branch(trained, PATHS, CPU)
    assert {"val", "test"} <= set(metrics) and metrics["test"]["n_movies"] > 0

    directory = PATHS.model(name)
    loaded = load_branch(directory)
    assert type(loaded) is cls
    assert sorted(vars(trained)) == sorted(vars(loaded))  # a fit leaves the model that loads, nothing of its rows
    assert loaded.modality == yaml.safe_load(REGISTRY.read_text())["branches"][name]["modality"]

    _, genres = load_prepared(PATHS.prepared)
    stored = pd.read_parquet(PATHS.predictions / f"{name}.parquet")
    index = load_index(PATHS.features(loaded.feature_set))
    rows = np.flatnonzero(index["split"].isin(SCORED).to_numpy())
    assert stored["id"].tolist() == index["id"].iloc[rows].tolist()
    arrays = load_aligned(loaded, PATHS, index["id"])
    again = loaded.predict_proba(loaded.inputs({key: array[rows] for key, array in arrays.items()}))
    assert again.dtype == np.float64
    assert again.tobytes() == stored[genres].to_numpy(dtype=np.float64).tobytes()

    model = directory / loaded.model_file
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(MovieGenreError) as caught:
        load_branch(directory)
    message = str(caught.value)
    assert message.startswith(f"{model}: corrupt or replaced") and "\n" not in message


class PoisonTouched(Exception):
    """Raised by a branch method handed a poisoned (test) row."""


@pytest.mark.parametrize("name", NAMES)
def test_no_branch_method_is_handed_a_test_row_before_the_fit_is_over(
    every_set: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    table, _ = load_prepared(PATHS.prepared)
    split_of = table.set_index("id")["split"]

    def is_test(ids: Any) -> np.ndarray:
        return (split_of.loc[np.asarray(ids)] == "test").to_numpy()

    def poisoned_arrays(branch: Branch, paths: Any, ids: pd.Series) -> dict[str, Any]:
        return {key: _poison(array, is_test(ids)) for key, array in load_aligned(branch, paths, ids).items()}

    labels_for = training.labels_for

    def poisoned_labels(ids: Any, table: pd.DataFrame, genres: list[str]) -> np.ndarray:
        labels = labels_for(ids, table, genres).astype(np.int16)
        labels[is_test(ids)] = -1
        return labels

    monkeypatch.setattr(training, "load_aligned", poisoned_arrays)
    monkeypatch.setattr(training, "labels_for", poisoned_labels)

    branch = branch_class(name)(tiny_settings(name), 0)
    calls, fit_args = _spy_on(branch)
    with pytest.raises(PoisonTouched):
        train_branch(branch, PATHS, CPU)

    touched = calls[-1]
    assert touched["poisoned"]
    assert touched["fit"] == "over", f"{touched['method']} was handed a test row {touched['fit']} the fit"
    assert touched["method"] in ("inputs", "predict_proba")  # the scoring of val and test, after the fit
    assert [call["method"] for call in calls].count("fit") == 1

    index = load_index(PATHS.features(branch.feature_set))
    train, val, _ = fit_args
    assert isinstance(train, Rows) and isinstance(val, Rows)
    assert len(train) == int((index["split"] == "train").sum()) and len(val) == int((index["split"] == "val").sum())
    proba = type(branch).predict_proba(branch, val.x)  # the model, unwrapped: fitted on no NaN, it gives none
    assert proba.shape == (len(val), train.labels.shape[1]) and np.isfinite(proba).all()


def _poison(array: Any, test: np.ndarray) -> Any:
    """``array`` with every test row poisoned: NaN in a float array (dense or sparse), -1 in a
    signed integer one (token ids), ``_marker`` in an unsigned one (pixels, which hold no NaN)."""
    if sp.issparse(array):
        where = np.flatnonzero(test)
        nan = sp.csr_matrix((np.full(len(where), np.nan), (where, np.zeros(len(where), int))), shape=array.shape)
        return (sp.csr_matrix(array, dtype=np.float32) + nan).astype(np.float32).tocsr()
    out = np.array(array)
    if out.dtype.kind == "f":
        out[test] = np.nan
    elif out.dtype.kind == "i":
        out[test] = -1
    else:
        out[test] = _marker(out.shape[1:]).astype(out.dtype)
    return out


def _marker(row_shape: tuple[int, ...]) -> np.ndarray:
    """A row no poster has: 0, 1, 2, ... 250, 0, 1, ... across all its values."""
    return (np.arange(int(np.prod(row_shape))) % 251).reshape(row_shape)


def _is_poisoned(value: Any) -> bool:
    """Whether anything a call was handed holds a poisoned row (see ``_poison``)."""
    if isinstance(value, Rows):
        return _is_poisoned(value.x) or _is_poisoned(value.labels)
    if isinstance(value, InputParts):
        return _is_poisoned(value.parts)
    if isinstance(value, Mapping):
        return any(_is_poisoned(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_is_poisoned(v) for v in value)
    if sp.issparse(value):
        return bool(np.isnan(value.data).any())
    if not isinstance(value, np.ndarray) or value.ndim < 2:
        return False
    if value.dtype.kind == "f":
        return bool(np.isnan(value).any())
    if value.dtype.kind == "i":
        return bool((value == -1).any())
    rows = value.reshape(len(value), -1)
    return value.dtype.kind == "u" and rows.shape[1] > 1 and bool((rows == _marker(rows.shape[1:])).all(axis=1).any())


def _spy_on(branch: Branch) -> tuple[list[dict[str, Any]], list[Any]]:
    """Wrap every public method of ``branch``: record each call (whether it was handed a poisoned
    row, before, during or after the fit) and raise ``PoisonTouched`` at the first poisoned one."""
    calls: list[dict[str, Any]] = []
    fit_args: list[Any] = []
    state = {"fit": "before"}

    def wrap(method_name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def spy(*args: Any, **kwargs: Any) -> Any:
            poisoned = _is_poisoned(args) or _is_poisoned(kwargs)
            calls.append({"method": method_name, "fit": state["fit"], "poisoned": poisoned})
            if poisoned:
                raise PoisonTouched(method_name)
            if method_name != "fit":
                return method(*args, **kwargs)
            fit_args.extend(args)
            state["fit"] = "during"
            result = method(*args, **kwargs)
            state["fit"] = "over"
            return result

        return spy

    for attribute in dir(type(branch)):
        if not attribute.startswith("_") and isinstance(
            inspect.getattr_static(type(branch), attribute), types.FunctionType
        ):
            setattr(branch, attribute, wrap(attribute, getattr(branch, attribute)))
    return calls, fit_args
