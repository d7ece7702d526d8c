"""A sweep across machines as docs/scale-out.md "Sweeps across machines" runs it, end to end on the
real pipeline.

DVC has no remote executors: the git remote and the DVC remote are all the machines share. A bare
git repository plays the git host and a local directory the bucket. The team publishes a baseline
(the tiny pipeline reproduced, committed, pushed to both remotes with its run history); two machines
clone it at once, each pulls, runs its own point of the sweep with `dvc exp run -S` and
`dvc exp push`es it; anyone then collects the points with `dvc exp pull` and compares them with
`moviegenre experiments`. One machine runs the commands of a CI job, the other the Slurm array
script of docs/scale-out.md as it is written there. Each "machine" is a separate clone with its own
DVC cache, so nothing reaches another except through the two remotes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.project import PROJECT_ROOT, dvc, env, git
from helpers.tiny_pipeline import ran, reset_to_commit

pytestmark = [pytest.mark.e2e, pytest.mark.heavy]

# One point per machine, both of text_linear (a branch that trains in a second): an experiment
# reruns that branch and the ensemble, which reads every branch's predictions, and check_params,
# which reads every param (its output does not move).
POINTS = {"c-small": "text_linear.C=0.5", "slurm41-2": "text_linear.C=8"}
# the sweep file of the Slurm machine: its array task 2 runs the second experiment
SWEEP_FILE = "# text_linear's regularisation\n\ntext_linear.C=0.5\n  text_linear.C=8\n"
RERUN = {"check_params", "train@text_linear", "ensemble"}
CHANGED = ("text_linear", "ensemble")


def unchanged(output: str) -> set[str]:
    return set(re.findall(r"Stage '([^']+)' didn't change, skipping", output))


def moviegenre(repo: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "moviegenre.cli", *args], cwd=repo, env=env(),
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, f"moviegenre {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def slurm_script() -> str:
    """The `sbatch --array` script that docs/scale-out.md gives."""
    text = (PROJECT_ROOT / "docs" / "scale-out.md").read_text()
    (script,) = re.findall(r"```bash\n(#!/bin/bash\n#SBATCH .*?)```", text, flags=re.DOTALL)
    return script


def clone(team: dict[str, Path], where: Path) -> Path:
    git(where.parent, "clone", "-q", str(team["origin"]), str(where))
    return where


@pytest.fixture(scope="module")
def team(pipeline: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """origin.git (the git host) and storage/ (the DVC remote, committed as the default) holding
    the reproduced tiny pipeline on main, its outputs and its run history. The baseline is a copy
    of the e2e modules' reproduced pipeline, its own DVC cache included."""
    root = tmp_path_factory.mktemp("sweep")
    origin, storage, repo = root / "origin.git", root / "storage", root / "repo"
    shutil.copytree(pipeline, repo, symlinks=True)
    reset_to_commit(repo)
    # the shared project's run history holds the runs of other modules' tests (text_linear.C=0.5
    # among them): a baseline that had run only itself has none of them
    shutil.rmtree(repo / ".dvc" / "cache" / "runs")
    (repo / ".dvc" / "config.local").unlink(missing_ok=True)  # no remote of another test's: only the team's
    (repo / "archive-path").unlink(missing_ok=True)
    dvc(repo, "remote", "add", "-d", "storage", str(storage))
    git(repo, "add", ".dvc/config")
    git(repo, "commit", "-q", "-m", "baseline: the team's remote")
    git(root, "init", "-q", "--bare", "-b", "main", str(origin))
    git(repo, "push", "-q", str(origin), "HEAD:main")
    dvc(repo, "push", "-q", "--run-cache")
    return {"root": root, "origin": origin, "storage": storage, "repo": repo}


@pytest.fixture(scope="module")
def machines(team: dict[str, Path]) -> dict[str, dict]:
    """Each point run on its own clone, both from the baseline: the CI job's clone is made and
    pulled before the Slurm task pushes, and runs and pushes after it. For each: the clone, what
    it printed, and the summary and text_linear predictions its run wrote."""
    root = team["root"]
    ci = clone(team, root / "machine-c-small")
    dvc(ci, "pull", "--allow-missing", "--run-cache")

    (root / "sweep.txt").write_text(SWEEP_FILE)
    (root / "sweep.sbatch").write_text(slurm_script())
    task = {"SLURM_ARRAY_JOB_ID": "41", "SLURM_ARRAY_TASK_ID": "2", "REPO": str(team["origin"]),
            "SWEEP": str(root / "sweep.txt"), "WORK": str(root), "VENV": sys.prefix}  # fmt: skip
    slurm = subprocess.run(["bash", str(root / "sweep.sbatch")], cwd=root, env=env() | task, capture_output=True,
                           text=True)  # fmt: skip
    assert slurm.returncode == 0, slurm.stdout + slurm.stderr
    assert "Pushed experiment slurm41-2" in slurm.stdout, slurm.stdout

    run = dvc(ci, "exp", "run", "--pull", "-n", "c-small", "-S", POINTS["c-small"]).stdout
    pushed = dvc(ci, "exp", "push", "--run-cache", "origin", "c-small")
    assert "Pushed experiment c-small" in pushed.stdout, pushed.stdout
    clones, runs = (
        {"c-small": ci, "slurm41-2": root / "moviegenre-slurm41-2"},
        {"c-small": run, "slurm41-2": slurm.stdout},
    )
    return {
        name: {
            "repo": repo,
            "run": runs[name],
            "summary": json.loads((repo / "metrics" / "summary.json").read_text()),
            "predictions": (repo / "data" / "predictions" / "text_linear.parquet").read_bytes(),
        }
        for name, repo in clones.items()
    }


def test_each_machine_trains_only_its_branch_and_the_ensemble(team: dict[str, Path], machines: dict) -> None:
    """The baseline's outputs came from the DVC remote, so every stage the point does not reach is
    left as pulled, and the point changed what the branch predicts."""
    baseline = (team["repo"] / "data" / "predictions" / "text_linear.parquet").read_bytes()
    stages = set(dvc(team["repo"], "stage", "list", "--names-only").stdout.split())
    for name, machine in machines.items():
        assert ran(machine["run"]) == RERUN, machine["run"]
        assert unchanged(machine["run"]) == stages - RERUN, machine["run"]
        assert machine["predictions"] != baseline, name
    assert machines["c-small"]["predictions"] != machines["slurm41-2"]["predictions"]


def test_a_job_on_a_remote_with_nothing_yet_pulls_nothing_and_goes_on(team: dict[str, Path], tmp_path: Path) -> None:
    """The first sweep on a new remote: the pull of outputs and run history finds nothing and
    fails nothing (the stages then run), as each job's pull is written to allow."""
    repo = clone(team, tmp_path / "first")
    dvc(repo, "remote", "add", "--local", "-d", "empty", str(tmp_path / "empty-remote"))
    assert dvc(repo, "pull", "--run-cache", check=False).returncode != 0  # without --allow-missing it fails
    dvc(repo, "pull", "--allow-missing", "--run-cache")
    assert not (repo / "models" / "text_linear").exists()  # nothing came down


def test_the_collector_compares_every_pushed_point_without_their_models(
    team: dict[str, Path], machines: dict, tmp_path: Path
) -> None:
    """`dvc exp pull --no-cache` brings the experiments' refs (params, dvc.lock) alone; their
    metrics are read from the DVC remote. Each point is a row with the param it changed and the
    AUCs its own machine wrote; every branch it did not reach is marked `=`."""
    collector = clone(team, tmp_path / "collector")
    pulled = dvc(collector, "exp", "pull", "--no-cache", "origin")  # every experiment of HEAD
    assert all(name in pulled.stdout for name in POINTS), pulled.stdout
    assert not (collector / ".dvc" / "cache").exists()  # no model came down
    text = moviegenre(collector, "experiments")
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 120, text
    for name, machine in machines.items():
        (row,) = [line for line in lines if line.startswith(name + " ")]
        assert f" {POINTS[name]} " in row, row
        branches = [key for key in machine["summary"] if key != "val"]
        cells = dict(zip(branches, re.findall(r"(\d\.\d{4})(.)", row + " "), strict=True))
        for branch, (value, mark) in cells.items():
            assert float(value) == pytest.approx(machine["summary"][branch], abs=5e-5), (branch, row)
            assert (mark != "=") if branch in CHANGED else (mark == "="), (branch, row)
        for branch in CHANGED:  # the generated plots carry their genres' words: well above chance
            assert 0.5 < machine["summary"][branch] <= 1.0, (branch, machine["summary"])


def test_a_collected_point_applies_with_the_outputs_its_machine_pushed(
    team: dict[str, Path], machines: dict, tmp_path: Path
) -> None:
    collector = clone(team, tmp_path / "collector")
    dvc(collector, "exp", "pull", "origin", "slurm41-2")  # the ref and its outputs
    dvc(collector, "exp", "apply", "slurm41-2")
    assert json.loads(dvc(collector, "status", "--json").stdout) == {}
    predictions = (collector / "data" / "predictions" / "text_linear.parquet").read_bytes()
    assert predictions == machines["slurm41-2"]["predictions"]


def test_a_point_already_run_by_a_machine_is_restored_from_its_run_history(
    team: dict[str, Path], machines: dict, tmp_path: Path
) -> None:
    """A sweep run again (a retried job, a later sweep sharing a point) trains nothing: the
    machine pushed its run history with the experiment."""
    repo = clone(team, tmp_path / "again")
    dvc(repo, "pull", "--allow-missing", "--run-cache")
    again = dvc(repo, "exp", "run", "--pull", "-n", "c-small-again", "-S", POINTS["c-small"]).stdout
    assert ran(again) == set(), again
    assert "Stage 'train@text_linear' is cached - skipping run, checking out outputs" in again
    assert (repo / "data" / "predictions" / "text_linear.parquet").read_bytes() == machines["c-small"]["predictions"]
