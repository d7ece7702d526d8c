"""The Branch interface: one plug-in that turns a movie's features into genre probabilities.

A branch names the feature set and arrays it reads, fits on the train and val rows the
train stage selects for it (``Rows``: a fit never holds a test row, so it cannot learn from
one), saves a self-describing directory ``models/<branch>/`` (its model file plus
``spec.json``) and loads itself from there to predict for any rows of its features. The train
stage, the ensemble and ``moviegenre predict`` all go through this interface, so adding a branch
is its module, its entry in ``registry.yaml``, its params section and its place in the
ensemble's list.

Settings are a frozen pydantic model per branch (``Settings``), validated once: from
params.yaml when a stage starts, from ``spec.json`` when a model loads. A spec written with
other keys (an older version of the branch) is refused with the command that rebuilds it.

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
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, ClassVar, Generic, Self, TypeVar, cast

import numpy as np
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, JsonValue, ValidationError

from moviegenre.config.runtime import RuntimeSettings
from moviegenre.config.settings import Settings, checked, explain, parse
from moviegenre.core.digests import check_digests, digests_problem, file_digests
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.files import atomic_dir, json_text, read_json
from moviegenre.core.paths import PATHS

SPEC = "spec.json"
_LIBRARIES = ("numpy", "scikit-learn", "keras", "tensorflow")


# The inputs a movie must have for a branch of each modality to score it.
NEEDS: dict[str, tuple[str, ...]] = {"poster": ("poster",), "plot": ("plot",), "both": ("poster", "plot")}


Name = Annotated[str, Field(min_length=1)]
Shape = list[Annotated[int, Field(gt=0)]]


def _shape(value: Any) -> Any:
    """One input's row shape, or each part's: refused here in one message, not per member of the union."""
    shapes = value.values() if isinstance(value, dict) else [value]
    ok = all(isinstance(s, list) and all(type(d) is int and d > 0 for d in s) for s in shapes)
    if not ok or (isinstance(value, dict) and not value):
        raise ValueError(f"must be a shape (a list of sizes) or a mapping of parts to shapes, not {value!r}")
    return value


def _fingerprint(value: Any) -> Any:
    prints = value.values() if isinstance(value, dict) else [value]
    if not all(isinstance(p, str) and p for p in prints) or (isinstance(value, dict) and not value):
        raise ValueError(f"must be a fingerprint or a mapping of feature sets to fingerprints, not {value!r}")
    return value


def _digests(value: dict[str, str]) -> dict[str, str]:
    problem = digests_problem(value)
    if problem:
        raise ValueError(f"has {problem}")
    return value


class ModelSpec(Settings):
    """What a saved model was trained on; written as ``spec.json`` beside it, checked when it is read."""

    branch: Name
    feature_set: Name  # the set whose rows it was trained on (a multi-set branch aligns the others to them)
    arrays: Annotated[list[Name], Field(min_length=1)]  # its reads(): "name" in feature_set, "set/name" in another
    # one input's row shape, or each part's (InputParts)
    input_shape: Annotated[Shape | dict[str, Shape], BeforeValidator(_shape)]
    input_description: str
    genres: Annotated[list[Name], Field(min_length=1), checked(lambda v: len(set(v)) == len(v), "distinct genres")]
    # one feature set's, or feature set -> its fingerprint
    features_fingerprint: Annotated[Name | dict[str, Name], BeforeValidator(_fingerprint)]
    settings: dict[str, JsonValue]  # to_dict(the branch's settings), checked again by Settings at load
    seed: int
    libraries: dict[str, Name]
    # every other file of the directory -> sha256 (save fills it; a spec of an older version has none)
    files: Annotated[dict[str, str], AfterValidator(_digests)] = Field(default_factory=dict)

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


S = TypeVar("S", bound=BaseModel)


class Branch(ABC, Generic[S]):
    """A trainable, saveable genre predictor over one feature set (or several, aligned by movie id).

    ``S`` is the model of its settings: ``class TextLinear(Branch[LinearSettings])`` types
    ``self.settings`` as ``LinearSettings``, and ``Settings`` names the same class for whatever
    validates a section by the branch's name (the train stage, ``load``, ``check-params``).
    """

    name: ClassVar[str]
    modality: ClassVar[str]  # "poster", "plot" or "both": the movies it can score (NEEDS)
    feature_set: ClassVar[str]  # the directory under data/features/ whose rows it trains on and scores
    Settings: ClassVar[type[BaseModel]]  # the model of its params.yaml section, named like the branch: S
    # True for a fit that runs in epochs and logs one curve point per epoch (the Keras branches);
    # a fit without epochs (a forest, a logistic regression) logs only its train/val summary
    epochs: ClassVar[bool] = False
    # True for a fit and prediction that go through joblib (the forests): the train stage then runs
    # them on the Dask cluster that DASK_SCHEDULER_ADDRESS names, if any, with the same bytes
    data_parallel: ClassVar[bool] = False
    model_file: str  # the model's file name inside models/<branch>/

    def __init__(self, settings: S | Mapping[str, object], seed: int, spec: ModelSpec | None = None) -> None:
        if isinstance(settings, Mapping):
            settings = cast(S, parse(self.Settings, self.name, dict(settings), f"{self.name} settings"))
        self.settings: S = settings
        self.seed, self.spec = seed, spec

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
            self.spec = self.spec.model_copy(update={"files": file_digests(tmp, exclude=(SPEC,))})
            (tmp / SPEC).write_text(json_text(self.spec.model_dump()))

    @classmethod
    def load(cls, directory: Path) -> Self:
        """The branch saved in ``directory``, once its spec and every file's digest check out."""
        spec = read_spec(directory)
        hint = restore_hint(directory, cls.name)
        if spec.branch != cls.name:
            raise MovieGenreError(f"{directory / SPEC}: holds branch {spec.branch!r}, not {cls.name!r}; {hint}")
        try:
            settings = cast(S, parse(cls.Settings, cls.name, spec.settings, directory / SPEC))
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
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as exc:
        problem = explain(exc, ModelSpec, entries="field")
        raise MovieGenreError(f"{path}: not a model spec ({problem}); run `dvc repro`") from None


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
