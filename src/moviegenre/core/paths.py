"""Where the pipeline's files live, relative to the project root, in one place.

Library functions take directories as arguments; stage scripts, the command line and the
tests ask this module where things are, so a layout change is one edit here and in dvc.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Each feature set lives under the folder of the movies' input it is computed from, so a stage
# that reads one modality depends on that folder alone: a poster change reruns no plot branch.
FEATURE_MODALITY = {
    "images": "poster",
    "poster_embeddings": "poster",
    "text": "plot",
    "word2vec": "plot",
    "embeddings": "plot",
}


@dataclass(frozen=True)
class ProjectPaths:
    """The DVC outputs of one project checkout (``root`` is its top directory)."""

    root: Path = Path(".")

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    @property
    def cache(self) -> Path:
        return self.root / "data" / "cache"

    @property
    def raw(self) -> Path:
        return self.root / "data" / "raw"

    @property
    def prepared(self) -> Path:
        return self.root / "data" / "prepared"

    def features(self, feature_set: str) -> Path:
        """``data/features/<modality>/<feature_set>``; a set no modality claims is a programming error."""
        return self.root / "data" / "features" / FEATURE_MODALITY[feature_set] / feature_set

    @property
    def predictions(self) -> Path:
        """The branches' val and test probabilities, one ``<branch>.parquet`` each: the ensemble's input."""
        return self.root / "data" / "predictions"

    def prediction(self, name: str) -> Path:
        """The probabilities of a branch, or of the ensemble (kept apart: the branches' folder is its input)."""
        return (
            self.root / "data" / "ensemble" / "predictions.parquet"
            if name == "ensemble"
            else self.predictions / f"{name}.parquet"
        )

    def model(self, branch: str) -> Path:
        return self.root / "models" / branch

    @property
    def metrics(self) -> Path:
        return self.root / "metrics"

    @property
    def timings(self) -> Path:
        return self.root / "metrics" / "timings"

    @property
    def summary(self) -> Path:
        return self.root / "metrics" / "summary.json"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    def live(self, branch: str) -> Path:
        return self.root / "dvclive" / branch


PATHS = ProjectPaths()


def project_root(cwd: Path | None = None) -> Path:
    """The project a relative ``data.source`` is relative to.

    DVC runs queued and ``--temp`` experiments in a copy under ``<project>/.dvc/tmp/exps/``,
    where ``../shared/...`` would point inside ``.dvc``; relative sources keep meaning the
    project's own neighbourhood there too.
    """
    cwd = (cwd or Path.cwd()).resolve()
    parts = cwd.parts
    for i in range(len(parts) - 3):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return cwd
