"""The graph tells the truth, statically: code deps cover every import, the branch list drives the stages."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import PROJECT_ROOT
from helpers.stage_imports import branch_module, resolved_stages, stage_code, uncovered

from moviegenre.branches.registry import NAMES, entries


@pytest.fixture(scope="module")
def stages() -> dict[str, dict]:
    return resolved_stages(PROJECT_ROOT)


def test_every_stage_depends_on_the_code_it_runs(stages: dict[str, dict]) -> None:
    """A module a stage imports (lazily too, or by the registry's name) is covered by a dep."""
    for name, stage in stages.items():
        missing = uncovered(stage_code(name, stage["cmd"]), stage["deps"])
        assert not missing, f"{name} imports {missing} but its deps in dvc.yaml do not cover them"


def test_the_coverage_check_names_an_uncovered_import() -> None:
    files = ["src/moviegenre/core/files.py", "src/moviegenre/data/http_client.py", "stages/train.py"]
    assert uncovered(files, ["src/moviegenre/core", "stages/train.py"]) == ["src/moviegenre/data/http_client.py"]
    assert uncovered(files, ["src/moviegenre/core/", "src/moviegenre/data", "stages/train.py"]) == []
    assert uncovered(["src/moviegenre/core_extra.py"], ["src/moviegenre/core"]) == ["src/moviegenre/core_extra.py"]


def test_code_deps_exist(stages: dict[str, dict]) -> None:
    for name, stage in stages.items():
        for dep in stage["deps"]:
            if dep.startswith(("src/", "stages/")):
                assert (PROJECT_ROOT / dep).exists(), f"{name}: code dep {dep} does not exist"


def test_one_train_stage_per_registered_branch(stages: dict[str, dict]) -> None:
    assert [name.partition("@")[2] for name in stages if name.startswith("train@")] == list(NAMES)
    for branch, entry in entries().items():
        stage = stages[f"train@{branch}"]
        assert stage["cmd"] == f"python stages/train.py {branch}"
        assert str(branch_module(branch).relative_to(PROJECT_ROOT)) == entry.code, branch
        assert entry.code in stage["deps"] and entry.features in stage["deps"], branch
        # its own params section and the shared ones it reads, nothing of another branch's
        assert sorted(stage["params"]) == sorted(["seed", "runtime", branch]), branch


def test_no_stage_reads_through_the_http_client_but_download(stages: dict[str, dict]) -> None:
    """Editing the retry logic reruns the download, not the features or the branches: a later stage
    reads at most the ``data`` section's model (prepare, for ``data.limit``), never the fetching code."""
    settings = {"src/moviegenre/download/__init__.py", "src/moviegenre/download/settings.py"}
    for name, stage in stages.items():
        if name not in ("check_params", "download"):
            read = {f for f in stage_code(name, stage["cmd"]) if f.startswith("src/moviegenre/download/")}
            assert read <= settings, (name, sorted(read - settings))
            assert "src/moviegenre/download" not in stage["deps"], name


def test_every_branch_has_its_registry_artifact() -> None:
    artifacts = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["artifacts"]
    paths = {entry["path"] for entry in artifacts.values()}
    for branch in NAMES:
        assert f"models/{branch}" in paths, f"dvc.yaml artifacts: no entry with path models/{branch}"


CURVES = {"auc": ("AUC", "training_curve"), "loss": ("loss", "training_curve"),
          "learning_rate": ("learning rate", "learning_rate")}  # fmt: skip


def test_the_training_curves_are_drawn_for_the_branches_that_fit_in_epochs_and_no_other() -> None:
    """Three top-level charts per branch with epochs, titled by branch and measure, train and val
    of one measure together; none for a fit without epochs, whose run has no curves to read."""
    definitions = {}
    for entry in yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["plots"]:
        plot_id, props = next(iter(entry.items())) if isinstance(entry, dict) else (entry, None)
        definitions[plot_id] = props
    expected = {}
    for branch, entry in entries().items():
        live = f"dvclive/{branch}/plots/metrics"
        for measure, (title, template) in CURVES.items() if entry.epochs else ():
            files = [f"{live}/learning_rate.tsv"] if measure == "learning_rate" else [
                f"{live}/train/{measure}.tsv", f"{live}/val/{measure}.tsv"]  # fmt: skip
            expected[f"{branch}/{measure}"] = {"title": f"{branch} · {title}", "template": template,
                                               "y": dict.fromkeys(files, measure)}  # fmt: skip
    curves = {plot_id: props for plot_id, props in definitions.items() if "dvclive/" in str(props)}
    assert list(curves) == list(expected), "dvc.yaml plots: one entry per measure of each branch with epochs"
    for plot_id, props in curves.items():
        assert {key: props[key] for key in ("title", "template", "y")} == expected[plot_id], plot_id
        assert props["x"] == "step" and (PROJECT_ROOT / ".dvc/plots" / f"{props['template']}.json").is_file()


def test_the_ensemble_depends_on_the_spec_of_every_branch_it_may_combine(stages: dict[str, dict]) -> None:
    """ensemble.json records each branch's spec.json digest, so a retrained branch must rerun it."""
    for branch in NAMES:
        assert f"models/{branch}/spec.json" in stages["ensemble"]["deps"], branch


def test_imports_point_down_the_pipeline() -> None:
    """import-linter contracts (pyproject.toml): layers, predict never reaches a training loop, and the
    Keras trainer never imports the branch base that imports it."""
    linter = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if linter is None:
        pytest.fail("lint-imports (import-linter, a [dev] dependency) is not installed")
    done = subprocess.run([linter], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "Contracts: 3 kept, 0 broken." in done.stdout


def unresolved_project_imports(path: Path) -> list[str]:
    """``from moviegenre.x import y`` lines of ``path`` where ``moviegenre.x`` or its ``y`` does not exist."""
    import ast
    import importlib
    import importlib.util

    missing = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("moviegenre"):
            module = node.module or ""
            try:
                found = importlib.import_module(module)
            except ImportError:
                missing.append(f"{path.name}:{node.lineno} {module}")
                continue
            missing += [
                f"{path.name}:{node.lineno} {module}.{alias.name}"
                for alias in node.names
                if not hasattr(found, alias.name) and importlib.util.find_spec(f"{module}.{alias.name}") is None
            ]
    return missing


def test_every_project_import_of_the_stages_and_benchmarks_resolves() -> None:
    """A moved module leaves no stage or benchmark importing its old name (nothing else runs them here)."""
    scripts = sorted((PROJECT_ROOT / "stages").glob("*.py")) + sorted((PROJECT_ROOT / "benchmarks").glob("*.py"))
    missing = [line for path in scripts for line in unresolved_project_imports(path)]
    assert not missing, f"imports of modules that do not exist: {missing}"


def test_the_import_check_names_a_moved_module(tmp_path: Path) -> None:
    script = tmp_path / "stage.py"
    script.write_text(
        "from moviegenre.features import tensorflow_runtime\nfrom moviegenre.core.gone import x\n"
        "from moviegenre.core import stage\n"
    )
    assert unresolved_project_imports(script) == [
        "stage.py:1 moviegenre.features.tensorflow_runtime",
        "stage.py:2 moviegenre.core.gone",
    ]
