"""The Branch interface: one plug-in that turns a movie's features into genre probabilities.

A branch names the feature set and arrays it reads, fits on the train and val rows the
train stage selects for it (``Rows``: a fit never holds a test row, so it cannot learn from
one), saves a self-describing directory ``models/<branch>/`` (its model file plus
``spec.json``) and loads itself from there to predict for any rows of its features. The train
stage, the ensemble and ``moviegenre predict`` all go through this interface, so adding a branch
is its module, its entry in ``registry.yaml``, its params section and its place in the
ensemble's list.

Settings are a frozen dataclass per branch (``Settings``), validated once: from params.yaml
when a stage starts, from ``spec.json`` when a model loads. A spec written with other keys (an
older version of the branch) is refused with the command that rebuilds it.

A branch over two feature sets (``fusion``: posters and plots, modality ``both``) names its
arrays ``set/array``: its rows are those of its own ``feature_set``, the other set's rows are
aligned to them by movie id, and its input is ``InputParts`` (one part per model input).

``spec.json`` records what the model was trained on: feature set, arrays and their input
shape, genre order, the fingerprint of the fitted features (PCA, vocabulary, ...) and the
library versions, and the sha256 of every file in the directory: a file that differs (a damaged
DVC cache, a truncated copy, another branch's model copied over it) is refused before it is read.
A model applied to features fitted differently is refused with one line.
For a branch over several feature sets, the input shape and the fingerprint are given per
part and per set; single-set specs keep their flat form, so their files stay as they were.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from moviegenre.config.keys import Schema
from moviegenre.config.runtime import RuntimeSettings
from moviegenre.config.settings import parse, schema_of
from moviegenre.core.digests import check_digests, digests_problem, file_digests
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.files import atomic_dir, json_text, read_json
from moviegenre.core.paths import PATHS

SPEC = "spec.json"
_LIBRARIES = ("numpy", "scikit-learn", "keras", "tensorflow")


# The inputs a movie must have for a branch of each modality to score it.
NEEDS: dict[str, tuple[str, ...]] = {"poster": ("poster",), "plot": ("plot",), "both": ("poster", "plot")}


@dataclass(frozen=True)
class ModelSpec:
    """What a saved model was trained on; written as ``spec.json`` beside it."""

    branch: str
    feature_set: str  # the set whose rows it was trained on (a multi-set branch aligns the others to them)
    arrays: list[str]  # its reads(): "name" in feature_set, "set/name" in another set
    input_shape: list[int] | dict[str, list[int]]  # one input's row shape, or each part's (InputParts)
    input_description: str
    genres: list[str]
    features_fingerprint: str | dict[str, str]  # one feature set's, or feature set -> its fingerprint
    settings: dict[str, Any]
    seed: int
    libraries: dict[str, str]
    files: dict[str, str] = field(default_factory=dict)  # every other file of the directory -> sha256 (save fills it)

    @staticmethod
    def library_versions() -> dict[str, str]:
        versions = {}
        for name in _LIBRARIES:
            try:
                versions[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                continue
        return versions


@dataclass(frozen=True, eq=False)  # no ==: numpy arrays have no single truth value to compare by
class Rows:
    """Some rows of a branch's input and their labels: what ``fit`` is given for train and for val.

    ``x`` is what ``inputs`` assembles, at these rows only (a numpy array, a scipy sparse matrix
    or ``InputParts``); ``labels`` the same rows' (n, n_genres) multi-hot genres. The train
    skeleton selects them, so a fit holds no row it must not learn from: test rows are never
    in either.
    """

    x: Any
    labels: np.ndarray

    def __post_init__(self) -> None:
        if int(self.x.shape[0]) != len(self.labels):
            raise ValueError(f"{self.x.shape[0]} input rows for {len(self.labels)} rows of labels")

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class FitContext:
    """What a fit may need beyond its rows.

    ``live`` is the stage's dvclive run (``dvclive.Live``), opened by the train skeleton for
    every branch: a fit in epochs logs its curves and summary there; for a fit without epochs
    the skeleton writes the summary alone.
    ``array_shapes`` is one row's shape of each array ``reads()`` names, by that name: a branch
    that joins several arrays into one input can tell where each lies in it.
    """

    genres: list[str]
    runtime: RuntimeSettings
    feature_dir: Path | None = None
    live: Any = None
    array_shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)


class InputParts:
    """The row-aligned inputs of a multi-input model (one per tower), selected by rows together.

    ``parts[rows]`` takes the same rows of every part, as an array's ``x[rows]`` would, so the
    train skeleton and prediction treat it like any other input; Keras receives ``parts.parts``
    as a dict keyed by its Input layers' names (``keras_common.make_dataset``).
    """

    def __init__(self, parts: Mapping[str, Any]) -> None:
        rows = {name: int(part.shape[0]) for name, part in parts.items()}
        if len(set(rows.values())) != 1:
            raise ValueError(f"input parts must have the same rows, not {rows}")
        self.parts = dict(parts)
        self.shape = (next(iter(rows.values())),)  # rows only: row_shape() gives each part's row shape

    def __getitem__(self, rows: Any) -> InputParts:
        return InputParts({name: part[rows] for name, part in self.parts.items()})

    def __len__(self) -> int:
        return self.shape[0]


class Branch(ABC):
    """A trainable, saveable genre predictor over one feature set (or several, aligned by movie id)."""

    name: ClassVar[str]
    modality: ClassVar[str]  # "poster", "plot" or "both": the movies it can score (NEEDS)
    feature_set: ClassVar[str]  # the directory under data/features/ whose rows it trains on and scores
    Settings: ClassVar[type]  # the dataclass of its params.yaml section, named like the branch
    # True for a fit that runs in epochs and logs one curve point per epoch (the Keras branches);
    # a fit without epochs (a forest, a logistic regression) logs only its train/val summary
    epochs: ClassVar[bool] = False
    # True for a fit and prediction that go through joblib (the forests): the train stage then runs
    # them on the Dask cluster that DASK_SCHEDULER_ADDRESS names, if any, with the same bytes
    data_parallel: ClassVar[bool] = False
    model_file: str  # the model's file name inside models/<branch>/

    def __init__(self, settings: Any, seed: int, spec: ModelSpec | None = None) -> None:
        if isinstance(settings, Mapping):
            settings = parse(self.Settings, self.name, dict(settings), Path(f"{self.name} settings"))
        self.settings: Any = settings
        self.seed, self.spec = seed, spec

    @classmethod
    def schema(cls) -> Schema:
        return schema_of(cls.Settings)

    # -- what it reads ---------------------------------------------------------------
    @abstractmethod
    def reads(self) -> tuple[str, ...]:
        """The arrays that ``inputs`` assembles (depends on settings): ``name`` of its own
        feature set, or ``set/name`` of any set (a branch over several sets)."""

    def sources(self) -> dict[str, tuple[str, str]]:
        """Each name of ``reads()`` -> (feature set, array in that set)."""
        out = {}
        for name in self.reads():
            feature_set, _, array = name.rpartition("/")
            out[name] = (feature_set or self.feature_set, array)
        return out

    def feature_sets(self) -> dict[str, tuple[str, ...]]:
        """The arrays it reads by feature set, its own set first (one entry for most branches)."""
        by_set: dict[str, list[str]] = {self.feature_set: []}
        for feature_set, array in self.sources().values():
            by_set.setdefault(feature_set, []).append(array)
        return {feature_set: tuple(arrays) for feature_set, arrays in by_set.items() if arrays}

    def inputs(self, arrays: Mapping[str, Any]) -> Any:
        """The model's input for every row of ``arrays`` (the one array by default)."""
        (only,) = self.reads()
        return arrays[only]

    def describe_input(self, arrays: Mapping[str, Any]) -> str:
        return " + ".join(f"{name} {_width(arrays[name])}" for name in self.reads())

    # -- the model -------------------------------------------------------------------
    @abstractmethod
    def fit(self, train: Rows, val: Rows, context: FitContext) -> dict[str, Any]:
        """Fit on ``train``; return extra metrics (epochs, throughput).

        ``val`` is there for what a fit tunes on held-out movies (early stopping, the learning
        rate's plateaus); a fit without such a step leaves it alone. Test rows are never given:
        they are scored once the fit is done. Whatever the model needs from its rows (a
        standardisation's mean, an input's width) comes from these arguments, not from an
        attribute another method set.
        """

    @abstractmethod
    def predict_proba(self, x: Any) -> np.ndarray:
        """(n, n_genres) float64 probabilities in [0, 1] for every row of ``x``."""

    @abstractmethod
    def save_model(self, directory: Path) -> None:
        """Write the fitted model as ``directory / model_file``, byte-reproducibly."""

    @abstractmethod
    def load_model(self, directory: Path) -> None:
        """Read ``directory / model_file`` into this instance."""

    # -- the self-describing directory ----------------------------------------------
    def save(self, directory: Path) -> None:
        if self.spec is None:
            raise ValueError(f"{self.name}: fitted without a spec")
        with atomic_dir(directory) as tmp:
            self.save_model(tmp)
            self.spec = replace(self.spec, files=file_digests(tmp, exclude=(SPEC,)))
            (tmp / SPEC).write_text(json_text(asdict(self.spec)))

    @classmethod
    def load(cls, directory: Path) -> Branch:
        """The branch saved in ``directory``, once its spec and every file's digest check out."""
        spec = read_spec(directory)
        hint = restore_hint(directory, cls.name)
        if spec.branch != cls.name:
            raise MovieGenreError(f"{directory / SPEC}: holds branch {spec.branch!r}, not {cls.name!r}; {hint}")
        try:
            settings: Any = parse(cls.Settings, cls.name, spec.settings, directory / SPEC)
        except MovieGenreError as exc:
            raise MovieGenreError(
                f"{exc}: the model was built by another version of {cls.name}; run `dvc repro -s train@{cls.name}`"
            ) from exc
        branch = cls(settings, spec.seed, spec)
        model = directory / branch.model_file
        if branch.model_file not in spec.files:
            raise MovieGenreError(
                f"{directory / SPEC}: records no digest of {branch.model_file} (written by an older version); "
                f"run `dvc repro -s train@{cls.name}`"
            )
        check_digests(directory, spec.files, directory / SPEC, hint)
        try:
            branch.load_model(directory)
        except MovieGenreError:
            raise
        except Exception as exc:  # a file that matches its digest yet does not load: written by another version
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise MovieGenreError(f"{model}: cannot be loaded ({reason}); run `dvc repro -s train@{cls.name}`") from exc
        return branch

    def check_features(
        self, directory: Path, arrays: Mapping[str, Any], features_fingerprint: str | dict[str, str]
    ) -> None:
        """Refuse features fitted differently from the ones the model was trained on."""
        assert self.spec is not None
        shape = row_shape(self.inputs(arrays))
        if shape != self.spec.input_shape or features_fingerprint != self.spec.features_fingerprint:
            sets = " + ".join(str(PATHS.features(feature_set)) for feature_set in self.feature_sets())
            raise MovieGenreError(
                f"{directory} was trained on {_shape_text(self.spec.input_shape)} features "
                f"({self.spec.input_description}) fitted as {_fingerprint_text(self.spec.features_fingerprint)}; "
                f"{sets} now gives {_shape_text(shape)} ({self.describe_input(arrays)}) "
                f"fitted as {_fingerprint_text(features_fingerprint)}: run `dvc repro`"
            )


def restore_hint(directory: Path, branch: str) -> str:
    """What to run when a model directory's files are not the ones its stage wrote."""
    return (
        f"run `dvc checkout --force {directory}`, or `dvc repro --force -s train@{branch}` "
        "if the DVC cache holds the same bytes"
    )


def read_spec(directory: Path) -> ModelSpec:
    """``directory/spec.json``, every field of the expected type (one line naming the first that is not)."""
    path = directory / SPEC
    fix = f"run `dvc checkout {directory}` (or `dvc repro` first)"
    data = read_json(path, fix)
    if not isinstance(data, dict):
        raise MovieGenreError(f"{path}: not a model spec (a JSON object); {fix}")
    names = {f.name for f in fields(ModelSpec)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise MovieGenreError(f"{path}: not a model spec (unknown field {unknown[0]!r}); run `dvc repro`")
    for name in names:
        if name == "files" and name not in data:
            continue  # an older version's spec: Branch.load names the stage that rebuilds it
        problem = "missing" if name not in data else _SPEC_FIELDS[name](data[name])
        if problem:
            raise MovieGenreError(f"{path}: field {name!r} is {problem}; run `dvc repro`")
    return ModelSpec(**data)


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _texts(value: Any) -> bool:
    return isinstance(value, list) and all(_is_text(v) for v in value)


def _shape(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)


def _check(ok: Any, describe: str) -> Any:
    return lambda value: None if ok(value) else f"not {describe}"


_SPEC_FIELDS: dict[str, Any] = {
    "branch": _check(_is_text, "a name"),
    "feature_set": _check(_is_text, "a name"),
    "arrays": _check(lambda v: _texts(v) and v, "a list of array names"),
    "input_shape": _check(
        lambda v: _shape(v) or (isinstance(v, dict) and all(_shape(p) for p in v.values())), "a shape"
    ),
    "input_description": _check(lambda v: isinstance(v, str), "a string"),
    "genres": _check(lambda v: _texts(v) and v and len(set(v)) == len(v), "a list of distinct genres"),
    "features_fingerprint": _check(
        lambda v: _is_text(v) or (isinstance(v, dict) and all(_is_text(p) for p in v.values())), "a fingerprint"
    ),
    "settings": _check(lambda v: isinstance(v, dict), "a mapping of settings"),
    "seed": _check(lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "libraries": _check(lambda v: isinstance(v, dict) and all(_is_text(x) for x in v.values()), "a mapping"),
    "files": lambda v: digests_problem(v),
}


def row_shape(x: Any) -> list[int] | dict[str, list[int]]:
    """The shape of one row of a model input; per part for ``InputParts``."""
    if isinstance(x, InputParts):
        return {name: list(_row_shape(part)) for name, part in x.parts.items()}
    return list(_row_shape(x))


def _row_shape(x: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in x.shape[1:])


def _width(array: Any) -> str:
    shape = _row_shape(array)
    return str(shape[0]) if len(shape) == 1 else "x".join(map(str, shape))


def _shape_text(shape: list[int] | dict[str, list[int]]) -> str:
    if isinstance(shape, dict):
        return " + ".join(f"{name} {_shape_text(part)}" for name, part in shape.items())
    return str(shape[0]) if len(shape) == 1 else "x".join(map(str, shape))


def _fingerprint_text(fingerprint: str | dict[str, str]) -> str:
    if isinstance(fingerprint, dict):
        return ", ".join(f"{feature_set} {value}" for feature_set, value in fingerprint.items())
    return fingerprint
