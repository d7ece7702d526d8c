"""Where the pipeline's files live, relative to the project root, in one place.

Library functions take directories as arguments; stage scripts, the command line and the
tests ask this module where things are, so a layout change is one edit here and in dvc.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
        return self.root / "data" / "features" / feature_set

    @property
    def predictions(self) -> Path:
        return self.root / "data" / "predictions"

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
