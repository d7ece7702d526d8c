"""The graph tells the truth, statically: code deps, file-level data deps, import layers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT_ROOT
from stage_imports import code_deps, stage_code


def test_every_stage_depends_on_exactly_the_code_it_runs() -> None:
    """A module a stage imports (lazily too) is a dep; a dep it does not import is a needless rerun."""
    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    for name, files in stage_code().items():
        declared = code_deps(stages[name])
        missing = sorted(set(files) - set(declared))
        extra = sorted(set(declared) - set(files))
        assert not missing, f"{name} imports {missing} but dvc.yaml does not list them (python tests/stage_imports.py)"
        assert not extra, f"{name} lists {extra} in dvc.yaml but does not import them"


def test_deep_branches_do_not_depend_on_the_pca_nor_the_forest_on_token_ids() -> None:
    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    named = {n: [d if isinstance(d, str) else next(iter(d)) for d in s.get("deps", [])] for n, s in stages.items()}
    deps = {name: [d for d in stage_deps if d.startswith("data/")] for name, stage_deps in named.items()}
    assert not any("pca" in d for d in deps["train_image_dl"])
    assert not any("sequences" in d or "tokenizer" in d for d in deps["train_text_ml"])
    for name, stage_deps in deps.items():
        assert "data/features/images" not in stage_deps and "data/features/text" not in stage_deps, name


def test_imports_point_down_the_pipeline() -> None:
    """import-linter contracts (pyproject.toml): layers, and predict never reaches a training loop."""
    linter = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if linter is None:
        pytest.fail("lint-imports (import-linter, a [dev] dependency) is not installed")
    done = subprocess.run([linter], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "Contracts: 2 kept, 0 broken." in done.stdout
