"""Sharing models the way docs/sharing.md says ("Set up a DVC remote", "Model registry"), end to end.

A tiny DVC project stands in for this one (running the real pipeline takes minutes): one stage
writes a model file into every directory that this project's dvc.yaml `artifacts:` names, and
the `artifacts:` section itself is copied from the project's dvc.yaml, so the registry under test
is the real one. A bare git repository plays GitHub, a local directory plays the S3 bucket.

Each test stands alone, in any order: the team is published once (``team``) and only read; a
test that commits, tags, pushes, runs an experiment or adds a worktree works on its own fork
(``own_team``): a copy of the git host and of the repo. The DVC remote stays shared, as it must
(its absolute path is committed in ``.dvc/config``, where `dvc artifacts get` and a teammate's
clone read it), and a push only adds content-addressed objects to it: what any commit resolves
to never changes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from helpers.project import PROJECT_ROOT, dvc, git
from helpers.stage_imports import resolved_stages

pytestmark = pytest.mark.e2e

TRAIN = """\
import pathlib, sys, yaml
units = yaml.safe_load(open("params.yaml"))["train"]["units"]
for folder in sys.argv[1:]:
    path = pathlib.Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.bin").write_bytes(f"{folder} with {units} units".encode())
"""


def project_artifacts() -> dict[str, dict]:
    return yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["artifacts"]


def model_bytes(repo: Path, path: str) -> bytes:
    return (repo / path / "model.bin").read_bytes()


def publish(root: Path) -> dict[str, Path]:
    """origin.git (the git host), storage/ (the DVC remote) and repo/ under ``root``: repo ran the
    stage, committed, pushed to both and registered image-ml@v1.0.0."""
    origin, storage, repo = root / "origin.git", root / "storage", root / "repo"
    git(root, "init", "-q", "--bare", "-b", "main", str(origin))
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    dvc(repo, "init", "-q")
    shutil.copy2(PROJECT_ROOT / ".dvc" / "config", repo / ".dvc" / "config")  # the project's cache settings
    paths = [a["path"] for a in project_artifacts().values()]
    (repo / "train.py").write_text(TRAIN)
    (repo / "params.yaml").write_text("train:\n  units: 3\n")
    stage = {"cmd": f"python train.py {' '.join(paths)}", "deps": ["train.py"], "params": ["train"], "outs": paths}
    dvc_yaml = {"stages": {"train": stage}, "artifacts": project_artifacts()}
    (repo / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml, sort_keys=False))
    dvc(repo, "repro", "-q")
    # docs/sharing.md: the team's remote, committed, as an absolute path (or s3://...)
    dvc(repo, "remote", "add", "-d", "storage", str(storage))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "models")
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "origin", "main")
    dvc(repo, "push", "-q")
    git(repo, "tag", "-a", "image-ml@v1.0.0", "-m", "image-ml v1.0.0")
    git(repo, "push", "-q", "origin", "--tags")
    return {"root": root, "origin": origin, "storage": storage, "repo": repo}


def fork(team: dict[str, Path], root: Path) -> dict[str, Path]:
    """Copies of the team's git host and repo under ``root``, the repo pushing to the copied host;
    the same DVC remote (see the module docstring). Copies, not a second ``publish``: no DVC run."""
    origin, repo = root / team["origin"].name, root / team["repo"].name
    shutil.copytree(team["origin"], origin, symlinks=True)
    shutil.copytree(team["repo"], repo, symlinks=True)
    git(repo, "remote", "set-url", "origin", str(origin))
    return {"root": root, "origin": origin, "storage": team["storage"], "repo": repo}


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The published team, as every test starts from it: read here, changed only in a fork."""
    return publish(tmp_path_factory.mktemp("sharing"))


@pytest.fixture
def own_team(team: dict[str, Path], tmp_path: Path) -> dict[str, Path]:
    """A fork of the published team for one test that changes it."""
    return fork(team, tmp_path)


def test_the_registry_names_every_model_directory_of_the_pipeline() -> None:
    """Every `models/...` output of dvc.yaml is an artifact of type model with a description and
    labels, under a valid DVC/GTO name: a new branch's model cannot be left out of the registry."""
    from dvc.repo.artifacts import check_name_format

    outs = {out for stage in resolved_stages(PROJECT_ROOT).values() for out in stage["outs"]}
    models = {out for out in outs if out.startswith("models/")}
    artifacts = project_artifacts()
    assert {a["path"] for a in artifacts.values()} >= models, "add an artifacts: entry for each models/ output"
    assert "models/ensemble" in {a["path"] for a in artifacts.values()}
    for name, artifact in artifacts.items():
        check_name_format(name)
        assert name == Path(artifact["path"]).name.replace("_", "-")
        assert artifact["type"] == "model" and artifact["desc"] and artifact["labels"]


def test_push_then_clone_and_pull_gives_a_clean_workspace_with_the_models(
    team: dict[str, Path], tmp_path: Path
) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(team["origin"]), str(clone))
    assert not list(clone.glob("models/*/model.bin"))  # git carries dvc.lock, not the models
    dvc(clone, "pull", "-q")
    assert json.loads(dvc(clone, "status", "--json").stdout) == {}
    for artifact in project_artifacts().values():
        assert model_bytes(clone, artifact["path"]) == model_bytes(team["repo"], artifact["path"])


def test_a_worktree_checks_out_from_the_shared_cache(own_team: dict[str, Path]) -> None:
    repo, worktree = own_team["repo"], own_team["root"] / "worktree"  # a worktree writes into .git
    git(repo, "worktree", "add", "-q", "--detach", str(worktree), "HEAD")
    assert dvc(worktree, "checkout", check=False).returncode != 0  # its own .dvc/cache is empty
    dvc(worktree, "cache", "dir", "--local", str(repo / ".dvc" / "cache"))
    dvc(worktree, "checkout", "-q")
    assert json.loads(dvc(worktree, "status", "--json").stdout) == {}


def test_artifacts_get_downloads_the_greatest_registered_version_from_the_remote(own_team: dict[str, Path]) -> None:
    repo, root, origin = own_team["repo"], own_team["root"], str(own_team["origin"])
    dvc(root, "artifacts", "get", origin, "image-ml", "-o", str(root / "v1"))
    first = (root / "v1" / "model.bin").read_bytes()
    assert first == b"models/image_ml with 3 units"
    # a new version: retrain, commit, push both, register
    (repo / "params.yaml").write_text("train:\n  units: 5\n")
    dvc(repo, "repro", "-q")
    git(repo, "commit", "-q", "-am", "5 units")
    git(repo, "push", "-q", "origin", "main")
    dvc(repo, "push", "-q")
    git(repo, "tag", "-a", "image-ml@v1.1.0", "-m", "image-ml v1.1.0")
    git(repo, "push", "-q", "origin", "--tags")
    dvc(root, "artifacts", "get", origin, "image-ml", "-o", str(root / "latest"))
    assert (root / "latest" / "model.bin").read_bytes() == b"models/image_ml with 5 units"
    dvc(root, "artifacts", "get", origin, "image-ml", "--rev", "v1.0.0", "-o", str(root / "old"))
    assert (root / "old" / "model.bin").read_bytes() == first
    missing = dvc(root, "artifacts", "get", origin, "text-ml", "-o", str(root / "x"), check=False)
    assert missing.returncode != 0  # not registered: no tag, no download


def test_exp_push_carries_the_experiment_and_its_models(own_team: dict[str, Path]) -> None:
    repo, root, origin = own_team["repo"], own_team["root"], own_team["origin"]
    dvc(repo, "exp", "run", "-q", "-n", "wider", "-S", "train.units=9")
    pushed = dvc(repo, "exp", "push", "origin", "wider")
    assert "Pushed experiment wider" in pushed.stdout
    teammate = root / "teammate"
    git(root, "clone", "-q", str(origin), str(teammate))
    dvc(teammate, "exp", "pull", "origin", "wider")
    dvc(teammate, "exp", "apply", "wider")
    assert model_bytes(teammate, "models/text_ml") == b"models/text_ml with 9 units"
    assert json.loads(dvc(teammate, "status", "--json").stdout) == {}
