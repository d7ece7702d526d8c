"""Temporary copies of the project for end-to-end DVC runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PLOTS_TEMPLATE = ".dvc/plots-template.html"
COPIED = ("dvc.yaml", "params.yaml", "stages", "src", ".dvcignore", ".gitignore")


def copy_project(dest: Path, overrides: dict[str, dict]) -> Path:
    """Copy code and configuration (no data) to ``dest``, a fresh git + DVC repo."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        src = PROJECT_ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    (dest / ".dvc").mkdir()
    shutil.copy2(PROJECT_ROOT / ".dvc" / "config", dest / ".dvc" / "config")
    shutil.copytree(PROJECT_ROOT / ".dvc" / "plots", dest / ".dvc" / "plots")  # the plot templates
    if (PROJECT_ROOT / PLOTS_TEMPLATE).is_file():  # `make install` writes it; .dvc/config names it
        shutil.copy2(PROJECT_ROOT / PLOTS_TEMPLATE, dest / PLOTS_TEMPLATE)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    for section, values in overrides.items():
        if isinstance(values, dict):
            params[section].update(values)
        else:
            params[section] = values
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "project copy")
    return dest


def env() -> dict[str, str]:
    """The environment stages run in: this interpreter's bin first, quiet TensorFlow, and no Dask
    cluster (a test that wants one sets DASK_SCHEDULER_ADDRESS itself)."""
    return {
        **{key: value for key, value in os.environ.items() if key != "DASK_SCHEDULER_ADDRESS"},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, env=env(), check=True, capture_output=True, text=True)
    return done.stdout


def dvc(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, env=env(), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result
