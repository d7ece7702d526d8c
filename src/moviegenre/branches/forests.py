"""The classical branches: ExtraTrees on poster features, RandomForest on TF-IDF of plots.

scikit-learn's forests fit all genres at once (multi-output trees). Their ``predict_proba``
returns one array per genre whose columns are the classes seen in training, so a genre that
was all-negative (or all-positive) in a fold has a single column; ``positive_proba`` turns
that into the right constant instead of an index error or a silently wrong column.

A fitted forest is saved as flat arrays (``FlatForest``: every tree's nodes end to end and
each leaf's positive-class probabilities), not as a pickled scikit-learn object. Unpickling
hundreds of trees decompresses and copies every node, the bulk of a one-movie prediction's
time and memory; the flat file is written uncompressed and memory-mapped, so
loading costs milliseconds and a prediction reads only the pages of the nodes it visits.
Prediction walks the flat trees (in numpy for a few rows, with scikit-learn's compiled walk
for many) and sums them in scikit-learn's order, so it gives the very same float64
probabilities as ``positive_proba`` on the fitted forest.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import joblib
import numpy as np
import scipy.sparse as sp

from moviegenre.branches.base import Branch, FitContext
from moviegenre.config.keys import Key, choice, integer
from moviegenre.config.settings import setting
from moviegenre.core.errors import MovieGenreError

log = logging.getLogger(__name__)


def _max_features(value: str | float) -> str | None:
    if isinstance(value, str):
        return None if value in ("sqrt", "log2") else f"must be sqrt, log2, an int or a fraction, not {value!r}"
    if isinstance(value, int):
        return None if value >= 1 else f"must be at least 1, not {value}"
    return None if 0 < value <= 1 else f"must be a fraction in (0, 1], not {value}"


@dataclass(frozen=True)
class ForestSettings:
    """A forest's own keys; how many processes grow it is ``runtime.n_jobs``."""

    n_estimators: int = setting(integer(1, 5000))
    max_depth: int | None = setting(integer(1, 1000, nullable=True))
    max_features: str | int | float = setting(
        Key((str, int, float), _max_features, describe="sqrt, log2, an int or a fraction")
    )
    min_samples_leaf: int = setting(integer(1, 10000))
    class_weight: str | None = setting(choice("balanced", "balanced_subsample", nullable=True))


@dataclass(frozen=True)
class ImageForestSettings(ForestSettings):
    features: str = setting(choice("pca", "pca+color"))


@dataclass(frozen=True)
class TextForestSettings(ForestSettings):
    features: str = setting(choice("tfidf"))


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


FLAT_FORMAT = "moviegenre-flat-forest-1"
_NUMPY_WALK_ROWS = 16  # up to this many rows walk the trees in numpy; more go through scikit-learn's compiled walk
FIT_BATCH = 50  # trees grown (and held as scikit-learn objects) at a time; see ForestBranch.fit_flat
_ROWS_PER_CHUNK = 256  # rows summed at once: bounds the (trees x rows x genres) gather


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

    def state(self) -> dict[str, Any]:
        """What ``save`` writes: plain arrays and numbers only, so loading needs no scikit-learn."""
        return {"format": FLAT_FORMAT, **{name: getattr(self, name) for name in self.__dataclass_fields__}}

    @classmethod
    def from_state(cls, state: dict[str, Any], path: Path) -> FlatForest:
        if state.get("format") != FLAT_FORMAT:
            raise MovieGenreError(f"{path}: not a flat forest ({state.get('format')!r}); run `dvc repro`")
        return cls(**{name: state[name] for name in cls.__dataclass_fields__})

    def save(self, path: Path) -> None:
        """Uncompressed, so that ``load`` can memory-map it; the same forest gives the same bytes."""
        joblib.dump(self.state(), path, compress=0)

    @classmethod
    def load(cls, path: Path) -> FlatForest:
        """Memory-mapped; a model saved before the flat format (a pickled forest) is flattened here."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*mmap_mode.*compressed", category=UserWarning)
            saved = joblib.load(path, mmap_mode="r")
        if isinstance(saved, dict):
            return cls.from_state(saved, path)
        log.info("%s: a pickled forest (saved before the flat format): flattening it in memory", path)
        return cls.from_sklearn(saved)

    def walk(self, x_by_feature: np.ndarray) -> np.ndarray:
        """(n_trees, n) leaf node of each of the n rows in every tree, for features given as
        float32 (n_features, n), walked in numpy as scikit-learn walks: left where the feature
        is <= the float64 threshold, a NaN where the node's missing_go_to_left says.

        For a few rows: it reads only the nodes on their paths (pages of the memory map) and
        needs no scikit-learn. Walkers are tree-major, so one step's gathers stay within one
        tree's nodes, and features are by column, so rows at the same node read adjacent memory.
        """
        n, n_trees = x_by_feature.shape[1], len(self.roots)
        feature, threshold = np.asarray(self.feature), np.asarray(self.threshold)
        children, missing_left = np.asarray(self.children).reshape(-1), np.asarray(self.missing_left)
        flat_x = x_by_feature.reshape(-1)
        leaves = np.empty(n_trees * n, dtype=np.int64)
        walker = np.arange(n_trees * n)
        column = np.tile(np.arange(n), n_trees)
        at = np.repeat(np.asarray(self.roots), n)
        while walker.size:
            split_on = feature[at]
            inside = split_on >= 0
            if not inside.all():
                leaves[walker[~inside]] = at[~inside]
                walker, at, split_on = walker[inside], at[inside], split_on[inside]
                if not walker.size:
                    break
            value = flat_x[split_on.astype(np.int64) * n + column[walker]]
            go_right = ~(value <= threshold[at])  # float32 promoted to float64, as in scikit-learn's Cython
            nan = np.isnan(value)
            if nan.any():
                go_right = np.where(nan, ~missing_left[at], go_right)
            at = children[2 * at.astype(np.int64) + go_right]
        return leaves.reshape(n_trees, n)

    def compiled_walk(self, x: Any) -> np.ndarray:
        """(n_trees, n) leaf nodes, the same as ``walk`` gives, from scikit-learn's compiled
        tree walk over trees rebuilt from these arrays (for many rows: the deep trees of a
        forest on sparse TF-IDF make the numpy walk about ten times slower)."""
        trees = self._sklearn_trees()
        return np.stack([tree.apply(x) + root for tree, root in zip(trees, np.asarray(self.roots), strict=True)])

    def _sklearn_trees(self) -> list[Any]:
        """scikit-learn ``Tree`` objects with these nodes (values left out: only ``apply`` is used)."""
        cached = self.__dict__.get("_trees")
        if cached is not None:
            return cached
        from sklearn.tree._tree import NODE_DTYPE, Tree

        roots = np.asarray(self.roots)
        ends = np.append(roots[1:], len(self.feature))
        trees = []
        for begin, end in zip(roots, ends, strict=True):
            children = np.asarray(self.children[begin:end], dtype=np.int64)
            feature = np.asarray(self.feature[begin:end])
            nodes = np.zeros(end - begin, dtype=NODE_DTYPE)
            nodes["left_child"] = np.where(children[:, 0] >= 0, children[:, 0] - begin, -1)
            nodes["right_child"] = np.where(children[:, 1] >= 0, children[:, 1] - begin, -1)
            nodes["feature"] = np.where(feature >= 0, feature, -2)
            nodes["threshold"] = self.threshold[begin:end]
            nodes["missing_go_to_left"] = self.missing_left[begin:end]
            tree = Tree(self.n_features, np.ones(1, dtype=np.intp), 1)
            state = {"max_depth": 0, "node_count": end - begin, "nodes": nodes, "values": np.zeros((end - begin, 1, 1))}
            tree.__setstate__(state)
            trees.append(tree)
        object.__setattr__(self, "_trees", trees)  # built once per loaded forest
        return trees

    def predict(self, x: Any) -> np.ndarray:
        """(n, n_genres) float64 positive-class probabilities, equal to ``positive_proba`` on the forest:
        the trees' probabilities added one tree after another from zero, then divided by their number."""
        sparse = sp.issparse(x)
        x = sp.csr_matrix(x, dtype=np.float32) if sparse else np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected {self.n_features} features, got shape {x.shape}")
        if x.shape[0] <= _NUMPY_WALK_ROWS:
            leaves = self.walk(np.ascontiguousarray((x.toarray() if sparse else x).T))
        else:
            leaves = self.compiled_walk(x)
        leaf, proba = np.asarray(self.leaf), np.asarray(self.proba)
        out = np.zeros((x.shape[0], proba.shape[1]), dtype=np.float64)
        for begin in range(0, x.shape[0], _ROWS_PER_CHUNK):
            per_tree = proba[leaf[leaves[:, begin : begin + _ROWS_PER_CHUNK]]]  # (trees, rows, genres)
            total = np.zeros(per_tree.shape[1:], dtype=np.float64)
            for tree_proba in per_tree:
                total += tree_proba
            out[begin : begin + len(total)] = total / len(self.roots)
        return out


class ForestBranch(Branch):
    """A multi-output forest on one feature matrix; subclasses choose the estimator and inputs.

    ``flat`` is what predicts and what is saved; the scikit-learn forest is not kept (see ``fit_flat``).
    """

    estimator: ClassVar[str]  # the scikit-learn class in sklearn.ensemble, imported when fitting only
    model_file = "model.joblib"

    def __init__(self, settings: Any, seed: int, spec: Any = None) -> None:
        super().__init__(settings, seed, spec)
        self.flat: FlatForest | None = None

    def make(self, n_jobs: int = -1) -> Any:
        import sklearn.ensemble

        estimator = getattr(sklearn.ensemble, self.estimator)
        keys = {f.name: getattr(self.settings, f.name) for f in dataclasses.fields(ForestSettings)}
        return estimator(random_state=self.seed, n_jobs=n_jobs, **keys)

    def fit(self, x: Any, labels: np.ndarray, split: np.ndarray, context: FitContext) -> dict[str, Any]:
        train = np.flatnonzero(split == "train")
        absent = [g for g, n in zip(context.genres, labels[train].sum(axis=0), strict=True) if n == 0]
        if absent:
            log.warning("genres with no positive training movie (predicted 0): %s", ", ".join(absent))
        self.flat = self.fit_flat(x[train], labels[train], context.runtime.n_jobs)
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
        """The flat trees, summed in order in one thread (in parallel the order, and the last bits, would vary)."""
        assert self.flat is not None
        return self.flat.predict(x)

    def save_model(self, directory: Path) -> None:
        assert self.flat is not None
        self.flat.save(directory / self.model_file)

    def load_model(self, directory: Path) -> None:
        self.flat = FlatForest.load(directory / self.model_file)


class ImageForest(ForestBranch):
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


class TextForest(ForestBranch):
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
