"""The classical branches: ExtraTrees on poster features, RandomForest on TF-IDF of plots.

scikit-learn's forests fit all genres at once (multi-output trees). Their ``predict_proba``
returns one array per genre whose columns are the classes seen in training, so a genre that
was all-negative (or all-positive) in a fold has a single column; ``positive_proba`` turns
that into the right constant instead of an index error or a silently wrong column.

A fitted forest is saved as flat arrays (``FlatForest``: every tree's nodes end to end and
each leaf's positive-class probabilities), not as a pickled scikit-learn object: unpickling
runs whatever code the file names (a model directory may come from a DVC remote or a
registry), and hundreds of unpickled trees copy every node, the bulk of a one-movie
prediction's time and memory. Each array is a ``.npy`` file beside a small JSON header
(``forest.json``: the format and the counts), memory-mapped and read without unpickling; before
use every array's dtype and shape, every node and leaf index and every probability is checked,
so a damaged or hand-made file is one line naming it, never a crash, an endless walk or a
probability outside [0, 1]. A directory written by an older version (a pickled
``model.joblib``) is refused, naming the stage that rebuilds it.

Prediction walks the flat trees in numpy, a block of rows at a time, and sums them in
scikit-learn's order, so it gives the very same float64 probabilities as ``positive_proba``
on the fitted forest; it needs neither scikit-learn nor its private tree classes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import numpy as np
import scipy.sparse as sp
from pydantic import Field, PlainValidator

from moviegenre.branches.base import Branch, FitContext, ModelSpec, Rows
from moviegenre.config.settings import Settings
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.files import json_text, read_json, read_npy

log = logging.getLogger(__name__)


def _max_features(value: Any) -> Any:
    """scikit-learn's max_features: a rule's name, a count of features or a fraction of them."""
    if type(value) not in (str, int, float) or (type(value) is str and value not in ("sqrt", "log2")):
        raise ValueError(f"must be sqrt, log2, an int or a fraction, not {value!r}")
    if type(value) is int and value < 1:
        raise ValueError(f"must be at least 1, not {value}")
    if type(value) is float and not 0 < value <= 1:
        raise ValueError(f"must be a fraction in (0, 1], not {value}")
    return value


class ForestSettings(Settings):
    """A forest's own keys; how many processes grow it is ``runtime.n_jobs``."""

    n_estimators: int = Field(ge=1, le=5000)
    max_depth: int | None = Field(ge=1, le=1000)
    max_features: Annotated[str | int | float, PlainValidator(_max_features)]
    min_samples_leaf: int = Field(ge=1, le=10000)
    class_weight: Literal["balanced", "balanced_subsample"] | None


class ImageForestSettings(ForestSettings):
    features: Literal["pca", "pca+color"]


class TextForestSettings(ForestSettings):
    features: Literal["tfidf"]


def positive_proba(forest: Any, features: Any) -> np.ndarray:
    """(n, n_genres) probability of the positive class for every genre of a fitted scikit-learn forest."""
    per_genre = forest.predict_proba(features)
    if not isinstance(per_genre, list):  # a single genre
        per_genre = [per_genre]
    columns = []
    for classes, proba in zip(forest.classes_ if len(per_genre) > 1 else [forest.classes_], per_genre, strict=True):
        classes = list(classes)
        if 1 in classes:
            columns.append(proba[:, classes.index(1)])
        else:
            columns.append(np.zeros(proba.shape[0]))
    return np.stack(columns, axis=1).astype(np.float64)


FLAT_FORMAT = "moviegenre-flat-forest-2"
HEADER = "forest.json"  # the format and the counts every array's shape follows from
LEGACY_MODEL = "model.joblib"  # the pickled forest an older version wrote: never read
FIT_BATCH = 50  # trees grown (and held as scikit-learn objects) at a time; see ForestBranch.fit_flat
_ROWS_PER_CHUNK = 256  # rows walked and summed at once: bounds the dense copy and the (trees x rows x genres) gather
_COMPACT_EVERY = 4  # walk steps between drops of the walkers that reached a leaf
PREDICT_BLOCK = 16 * _ROWS_PER_CHUNK  # rows per task when the rows are scored on a cluster
_COUNTS = ("n_features", "n_trees", "n_nodes", "n_leaves", "n_genres")
# each array's file, dtype and shape (in counts of the header)
ARRAYS: dict[str, tuple[str, np.dtype, tuple[str | int, ...]]] = {
    "roots": ("roots.npy", np.dtype(np.int64), ("n_trees",)),
    "children": ("children.npy", np.dtype(np.int32), ("n_nodes", 2)),
    "feature": ("feature.npy", np.dtype(np.int32), ("n_nodes",)),
    "threshold": ("threshold.npy", np.dtype(np.float64), ("n_nodes",)),
    "missing_left": ("missing_left.npy", np.dtype(np.bool_), ("n_nodes",)),
    "leaf": ("leaf.npy", np.dtype(np.int32), ("n_nodes",)),
    "proba": ("proba.npy", np.dtype(np.float64), ("n_leaves", "n_genres")),
}


@dataclass(frozen=True, eq=False)  # no ==: numpy arrays have no single truth value to compare by
class FlatForest:
    """A fitted multi-output forest as flat arrays: every tree's nodes end to end.

    ``children`` holds each node's left and right child as global node indices, ``roots``
    each tree's first node, ``feature`` the feature a node splits on (-1 at a leaf), ``leaf``
    a node's row in ``proba`` (-1 inside the tree) and ``proba`` a leaf's positive-class
    probability per genre (0 for a genre never positive in training, as ``positive_proba``
    gives). Any array may be a read-only memory map.
    """

    n_features: int
    roots: np.ndarray  # int64 (n_trees,)
    children: np.ndarray  # int32 (n_nodes, 2): left, right (-1 at a leaf)
    feature: np.ndarray  # int32 (n_nodes,)
    threshold: np.ndarray  # float64 (n_nodes,)
    missing_left: np.ndarray  # bool (n_nodes,): where a NaN goes (scikit-learn's missing_go_to_left)
    leaf: np.ndarray  # int32 (n_nodes,)
    proba: np.ndarray  # float64 (n_leaves, n_genres)

    @classmethod
    def from_sklearn(cls, forest: Any, estimators: list[Any] | None = None) -> FlatForest:
        """Flatten a fitted ExtraTrees/RandomForest classifier (labels 0/1 per genre), or only ``estimators`` of it."""
        n_outputs = int(forest.n_outputs_)
        classes = forest.classes_ if n_outputs > 1 else [forest.classes_]
        positive = [list(c).index(1) if 1 in list(c) else None for c in classes]  # column of class 1 per genre
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("children", "feature", "threshold", "missing", "leaf")}
        roots, probas, offset, leaves = [], [], 0, 0
        for estimator in forest.estimators_ if estimators is None else estimators:
            tree = estimator.tree_
            is_leaf = tree.children_left == -1
            leaf = np.full(tree.node_count, -1, dtype=np.int64)
            leaf[is_leaf] = leaves + np.arange(int(is_leaf.sum()))
            value = tree.value[is_leaf]  # (leaves, n_outputs, max classes): class fractions since scikit-learn 1.4
            columns = [value[:, k, c] if c is not None else np.zeros(len(value)) for k, c in enumerate(positive)]
            probas.append(np.stack(columns, axis=1).astype(np.float64))
            children = np.stack([tree.children_left, tree.children_right], axis=1).astype(np.int64)
            parts["children"].append(np.where(is_leaf[:, None], -1, children + offset))
            parts["feature"].append(np.where(is_leaf, -1, tree.feature))
            parts["threshold"].append(tree.threshold)
            parts["missing"].append(np.asarray(tree.missing_go_to_left, dtype=bool))
            parts["leaf"].append(leaf)
            roots.append(offset)
            offset += tree.node_count
            leaves += int(is_leaf.sum())
        return cls(
            n_features=int(forest.n_features_in_),
            roots=np.asarray(roots, dtype=np.int64),
            children=np.concatenate(parts["children"]).astype(np.int32),
            feature=np.concatenate(parts["feature"]).astype(np.int32),
            threshold=np.concatenate(parts["threshold"]).astype(np.float64),
            missing_left=np.concatenate(parts["missing"]),
            leaf=np.concatenate(parts["leaf"]).astype(np.int32),
            proba=np.concatenate(probas),
        )

    @classmethod
    def concatenate(cls, forests: list[FlatForest]) -> FlatForest:
        """One forest of these forests' trees, in order (node and leaf indices shifted past the earlier ones)."""
        nodes = np.cumsum([0, *(len(f.feature) for f in forests)])
        leaves = np.cumsum([0, *(len(f.proba) for f in forests)])
        return cls(
            n_features=forests[0].n_features,
            roots=np.concatenate([f.roots + n for f, n in zip(forests, nodes, strict=False)]),
            children=np.concatenate(
                [np.where(f.children >= 0, f.children + n, -1) for f, n in zip(forests, nodes, strict=False)]
            ).astype(np.int32),
            feature=np.concatenate([f.feature for f in forests]),
            threshold=np.concatenate([f.threshold for f in forests]),
            missing_left=np.concatenate([f.missing_left for f in forests]),
            leaf=np.concatenate(
                [np.where(f.leaf >= 0, f.leaf + n, -1) for f, n in zip(forests, leaves, strict=False)]
            ).astype(np.int32),
            proba=np.concatenate([f.proba for f in forests]),
        )

    def counts(self) -> dict[str, int]:
        """The header's counts: every array's shape follows from them."""
        return {
            "n_features": int(self.n_features),
            "n_trees": len(self.roots),
            "n_nodes": len(self.feature),
            "n_leaves": len(self.proba),
            "n_genres": int(np.shape(self.proba)[1]),
        }

    def save(self, directory: Path) -> None:
        """The header and one uncompressed ``.npy`` per array, so that ``load`` can memory-map
        them; the same forest gives the same bytes."""
        for name, (file, dtype, _) in ARRAYS.items():
            np.save(directory / file, np.ascontiguousarray(getattr(self, name), dtype=dtype), allow_pickle=False)
        (directory / HEADER).write_text(json_text({"format": FLAT_FORMAT, **self.counts()}))

    @classmethod
    def load(cls, directory: Path, fix: str = "run `dvc repro`") -> FlatForest:
        """The forest saved in ``directory``, memory-mapped, once every file checks out.

        Nothing is unpickled; whatever is not what ``save`` writes is one ``MovieGenreError``
        line naming the file and ``fix``.
        """
        header = directory / HEADER
        if not header.is_file() and (directory / LEGACY_MODEL).is_file():
            raise MovieGenreError(
                f"{directory / LEGACY_MODEL}: a pickled forest written by an older version, which is not loaded; {fix}"
            )
        counts = _read_header(header, fix)
        arrays = {}
        for name, (file, dtype, shape) in ARRAYS.items():
            array = read_npy(directory / file, fix, mmap=True)
            expected = tuple(counts[dim] if isinstance(dim, str) else dim for dim in shape)
            if array.dtype != dtype or array.shape != expected:
                raise MovieGenreError(
                    f"{directory / file}: {array.dtype} {array.shape} where {dtype} {expected} belongs "
                    f"(as {header} counts); {fix}"
                )
            arrays[name] = array
        problem = _structure_problem(counts, arrays)
        if problem is not None:
            name, reason = problem
            raise MovieGenreError(f"{directory / ARRAYS[name][0]}: {reason}; {fix}")
        return cls(n_features=counts["n_features"], **arrays)

    def walk(self, x_by_feature: np.ndarray) -> np.ndarray:
        """(n_trees, n) leaf node of each of the n rows in every tree, for features given as
        float32 (n_features, n), walked in numpy as scikit-learn walks: left where the feature
        is <= the float64 threshold, a NaN where the node's missing_go_to_left says.

        It reads only the nodes on the rows' paths (pages of the memory map). Walkers are
        tree-major, so one step's gathers stay within one tree's nodes, and features are by
        column, so rows at the same node read adjacent memory. A walker that reaches a leaf
        stays there (a leaf's children are -1) until the next drop of finished walkers, every
        ``_COMPACT_EVERY`` steps: fewer, larger steps than dropping them at every one. A leaf's
        feature is -1, whose gather lands on the last feature's row; its value is not used.
        """
        n, n_trees = x_by_feature.shape[1], len(self.roots)
        feature, threshold = np.asarray(self.feature), np.asarray(self.threshold)
        children, missing_left = np.asarray(self.children).reshape(-1), np.asarray(self.missing_left)
        flat_x = x_by_feature.reshape(-1)
        any_nan = bool(np.isnan(flat_x).any())
        stride = np.intp(n)  # int64 offsets: feature (int32) * rows could overflow int32
        leaves = np.empty(n_trees * n, dtype=np.int64)
        walker = np.arange(n_trees * n)
        column = np.tile(np.arange(n), n_trees)
        at = np.repeat(np.asarray(self.roots, dtype=np.int64), n)
        step = 0
        while walker.size:
            split_on = feature[at]
            if step % _COMPACT_EVERY == 0:
                done = split_on < 0
                if done.any():
                    leaves[walker[done]] = at[done]
                    keep = ~done
                    walker, at, column, split_on = walker[keep], at[keep], column[keep], split_on[keep]
                    if not walker.size:
                        break
            step += 1
            value = flat_x[split_on * stride + column]
            go_right = ~(value <= threshold[at])  # float32 promoted to float64, as in scikit-learn's Cython
            if any_nan:
                go_right = np.where(np.isnan(value), ~missing_left[at], go_right)
            child = children[2 * at + go_right]
            at = np.where(child >= 0, child, at)
        return leaves.reshape(n_trees, n)

    def predict(self, x: Any) -> np.ndarray:
        """(n, n_genres) float64 positive-class probabilities, equal to ``positive_proba`` on the forest:
        the trees' probabilities added one tree after another from zero, then divided by their number.

        ``_ROWS_PER_CHUNK`` rows at a time: a sparse matrix is made dense a block of rows at once."""
        sparse = sp.issparse(x)
        x = sp.csr_matrix(x, dtype=np.float32) if sparse else np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected {self.n_features} features, got shape {x.shape}")
        leaf, proba = np.asarray(self.leaf), np.asarray(self.proba)
        out = np.zeros((x.shape[0], proba.shape[1]), dtype=np.float64)
        for begin in range(0, x.shape[0], _ROWS_PER_CHUNK):
            rows = x[begin : begin + _ROWS_PER_CHUNK]
            leaves = self.walk(np.ascontiguousarray((rows.toarray() if sparse else rows).T))
            per_tree = proba[leaf[leaves]]  # (trees, rows, genres)
            total = np.zeros(per_tree.shape[1:], dtype=np.float64)
            for tree_proba in per_tree:
                total += tree_proba
            out[begin : begin + len(total)] = total / len(self.roots)
        return out


def _on_dask() -> bool:
    """Whether joblib's active backend is Dask's (set by the train stage for a cluster)."""
    from joblib.parallel import get_active_backend

    return type(get_active_backend()[0]).__name__ == "DaskDistributedBackend"


def _predict_block(n_features: int, *arrays_and_rows: Any) -> np.ndarray:
    """A worker's block of ``FlatForest.predict``: the forest rebuilt from its arrays (in ``ARRAYS`` order)."""
    *arrays, rows = arrays_and_rows
    return FlatForest(n_features, **dict(zip(ARRAYS, arrays, strict=True))).predict(rows)


def _read_header(path: Path, fix: str) -> dict[str, int]:
    header = read_json(path, fix)
    if not isinstance(header, dict) or header.get("format") != FLAT_FORMAT:
        found = header.get("format") if isinstance(header, dict) else header
        raise MovieGenreError(f"{path}: not a flat forest of format {FLAT_FORMAT} ({found!r}); {fix}")
    if set(header) != {"format", *_COUNTS}:
        raise MovieGenreError(f"{path}: fields {sorted(header)}, not format and {', '.join(_COUNTS)}; {fix}")
    for name in _COUNTS:
        if type(header[name]) is not int or header[name] < 1:
            raise MovieGenreError(f"{path}: {name} is {header[name]!r}, not a positive integer; {fix}")
    return {name: header[name] for name in _COUNTS}


def _structure_problem(counts: dict[str, int], arrays: dict[str, np.ndarray]) -> tuple[str, str] | None:
    """The first array whose values a forest cannot have, and why; None when all can.

    What ``from_sklearn`` and ``concatenate`` write: trees are consecutive runs of nodes
    starting at ``roots``; a leaf (feature -1) has no children and the next leaf row, in node
    order; an inner node splits on a feature that exists and has both children later in its
    own tree, so every walk ends at a leaf of the tree it started in.
    """
    n_nodes = counts["n_nodes"]
    roots = np.asarray(arrays["roots"])
    if roots[0] != 0 or (np.diff(roots) <= 0).any() or roots[-1] >= n_nodes:
        return "roots", f"not increasing tree starts from 0 below {n_nodes} nodes"
    feature, leaf = np.asarray(arrays["feature"]), np.asarray(arrays["leaf"])
    is_leaf = feature == -1
    if ((feature < -1) | (feature >= counts["n_features"])).any():
        return "feature", f"a feature outside -1 (a leaf) to {counts['n_features'] - 1}"
    if is_leaf.sum() != counts["n_leaves"] or not np.array_equal(leaf[is_leaf], np.arange(counts["n_leaves"])):
        return "leaf", f"leaves not numbered 0 to {counts['n_leaves'] - 1} in node order"
    if (leaf[~is_leaf] != -1).any():
        return "leaf", "a leaf row on a node that splits"
    children = np.asarray(arrays["children"])
    if (children[is_leaf] != -1).any():
        return "children", "a child under a leaf"
    node = np.flatnonzero(~is_leaf)
    end = np.append(roots[1:], n_nodes)[np.searchsorted(roots, node, side="right") - 1]
    inner = children[~is_leaf]
    if ((inner <= node[:, None]) | (inner >= end[:, None])).any():
        return "children", "a child that is not a later node of its own tree"
    if not np.isfinite(np.asarray(arrays["threshold"])).all():
        return "threshold", "a threshold that is not a finite number"
    proba = np.asarray(arrays["proba"])
    if not (np.isfinite(proba) & (proba >= 0) & (proba <= 1)).all():
        return "proba", "a probability that is not a number in [0, 1]"
    return None


F = TypeVar("F", bound=ForestSettings)


class ForestBranch(Branch[F]):
    """A multi-output forest on one feature matrix; subclasses choose the estimator and inputs.

    ``flat`` is what predicts and what is saved; the scikit-learn forest is not kept (see ``fit_flat``).
    """

    estimator: ClassVar[str]  # the scikit-learn class in sklearn.ensemble, imported when fitting only
    model_file = HEADER  # the arrays' files are saved beside it
    data_parallel = True  # trees grown and rows scored through joblib: on a cluster when one is named

    def __init__(self, settings: F | Mapping[str, object], seed: int, spec: ModelSpec | None = None) -> None:
        super().__init__(settings, seed, spec)
        self.flat: FlatForest | None = None

    def make(self, n_jobs: int = -1) -> Any:
        import sklearn.ensemble

        estimator = getattr(sklearn.ensemble, self.estimator)
        keys = {name: getattr(self.settings, name) for name in ForestSettings.model_fields}
        return estimator(random_state=self.seed, n_jobs=n_jobs, **keys)

    def fit(self, train: Rows, val: Rows, context: FitContext) -> dict[str, Any]:
        """Grown on ``train`` alone: a forest has nothing to tune on ``val``."""
        absent = [g for g, n in zip(context.genres, train.labels.sum(axis=0), strict=True) if n == 0]
        if absent:
            log.warning("genres with no positive training movie (predicted 0): %s", ", ".join(absent))
        self.flat = self.fit_flat(train.x, train.labels, context.runtime.n_jobs)
        return {}

    def fit_flat(self, x: Any, labels: np.ndarray, n_jobs: int = -1) -> FlatForest:
        """The forest scikit-learn fits on ``x``, grown ``FIT_BATCH`` trees at a time and flattened as it grows.

        A fitted scikit-learn tree keeps both classes' fractions of every genre at every node,
        several times the flat arrays' bytes, and its size grows with the data (``max_depth:
        null``), so a forest fitted whole peaks at all of them at once. Grown by warm start,
        each batch is flattened and its trees dropped before the next, so at most one batch is
        held. scikit-learn draws every tree's seed from ``random_state`` as a one-shot fit
        does (warm start skips the seeds of the trees already grown), so the trees, and the
        saved bytes, are the same as fitting all of them at once.
        """
        if sp.issparse(x):
            x = sp.csc_matrix(
                x, dtype=np.float32
            )  # the layout and dtype scikit-learn's trees fit on: no copy per batch
            x.sort_indices()
        forest = self.make(n_jobs)
        forest.set_params(warm_start=True)
        total, parts = int(self.settings.n_estimators), []
        for grown in range(0, total, FIT_BATCH):
            forest.set_params(n_estimators=min(total, grown + FIT_BATCH))
            forest.fit(x, labels)
            parts.append(FlatForest.from_sklearn(forest, forest.estimators_[grown:]))
            forest.estimators_[grown:] = [None] * (len(forest.estimators_) - grown)  # warm start only counts them
        return FlatForest.concatenate(parts)

    def predict_proba(self, x: Any) -> np.ndarray:
        """The flat trees, summed in order in one thread (in parallel the order, and the last bits, would vary).

        Inside joblib's Dask backend (the train stage on a cluster) blocks of rows go to the
        workers instead: a row's sum runs over the trees in the same order whichever block holds
        it, so the blocks joined in order are the same bytes."""
        assert self.flat is not None
        if not _on_dask():
            return self.flat.predict(x)
        from joblib import Parallel, delayed

        flat = self.flat
        arrays = [np.asarray(getattr(flat, name)) for name in ARRAYS]  # scattered once each, not sent per block
        blocks = range(0, x.shape[0], PREDICT_BLOCK)
        parts = Parallel()(delayed(_predict_block)(flat.n_features, *arrays, x[b : b + PREDICT_BLOCK]) for b in blocks)
        return np.concatenate(parts) if parts else flat.predict(x)

    def save_model(self, directory: Path) -> None:
        assert self.flat is not None
        self.flat.save(directory)

    def load_model(self, directory: Path) -> None:
        self.flat = FlatForest.load(directory, f"run `dvc repro -s train@{self.name}`")


class ImageForest(ForestBranch[ImageForestSettings]):
    """ExtraTrees on the posters' PCA components, plus colour statistics for ``pca+color``."""

    name = "image_ml"
    modality = "poster"
    feature_set = "images"
    estimator = "ExtraTreesClassifier"
    Settings = ImageForestSettings

    def reads(self) -> tuple[str, ...]:
        return ("pca", "colour") if self.settings.features == "pca+color" else ("pca",)

    def inputs(self, arrays: Mapping[str, Any]) -> np.ndarray:
        return np.hstack([np.asarray(arrays[name], dtype=np.float32) for name in self.reads()])


class TextForest(ForestBranch[TextForestSettings]):
    """RandomForest on TF-IDF of plots (plot-only movies train too)."""

    name = "text_ml"
    modality = "plot"
    feature_set = "text"
    estimator = "RandomForestClassifier"
    Settings = TextForestSettings

    def reads(self) -> tuple[str, ...]:
        return ("tfidf",)

    def inputs(self, arrays: Mapping[str, Any]) -> sp.csr_matrix:
        return sp.csr_matrix(arrays["tfidf"])
