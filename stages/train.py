"""train@<branch>: fit one branch of the registry on its features; write its model, predictions and metrics."""

import sys

from moviegenre.branches.registry import branch_class
from moviegenre.branches.training import run_train_stage
from moviegenre.core import stage
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.paths import PATHS


def main() -> None:
    if len(sys.argv) != 2:
        raise MovieGenreError("usage: python stages/train.py <branch>")
    run_train_stage(branch_class(sys.argv[1]), PATHS)


if __name__ == "__main__":
    stage.run(main)
