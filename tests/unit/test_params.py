"""params.yaml validation: the shipped file is valid; bad keys are named."""

from __future__ import annotations

import re
import resource
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import PROJECT_ROOT

from moviegenre.cli.check import check_params
from moviegenre.config import params
from moviegenre.core.errors import MovieGenreError
from moviegenre.data.prepare import PrepareSettings
from moviegenre.download.settings import DataSettings

MODELS = {"data": DataSettings, "prepare": PrepareSettings}


def _edited(tmp_path: Path, section: str, key: str, value: object) -> Path:
    loaded = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    loaded[section][key] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(loaded))
    return path


def test_shipped_params_are_valid() -> None:
    everything = check_params(PROJECT_ROOT / "params.yaml")
    assert everything.data.source.endswith("mmimdb-subset.tar.gz")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("data", "retriez", 3, "unknown key 'data.retriez'"),
        ("data", "retries", "three", "'data.retries' must be an integer"),
        ("data", "retries", -1, "'data.retries' must be in"),
        ("data", "sha256", "abc", "'data.sha256' must be 64 hex digits"),
        ("prepare", "min_genre_count", True, "'prepare.min_genre_count' must be an integer"),
    ],
)
def test_bad_key_is_named(tmp_path: Path, section: str, key: str, value: object, message: str) -> None:
    path = _edited(tmp_path, section, key, value)
    with pytest.raises(MovieGenreError) as caught:
        params.load_settings(MODELS[section], section, path=path)
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_missing_params_file(tmp_path: Path) -> None:
    with pytest.raises(MovieGenreError, match="params file not found"):
        params.load_settings(DataSettings, "data", path=tmp_path / "params.yaml")


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("data", "timout_s", 5, "unknown key 'data.timout_s'"),
        ("image_ml", "n_estimators", 0, "'image_ml.n_estimators' must be in [1, 5000], not 0"),
        ("image_dl", "arch", "seed", "not 'seed' (renamed 'classic_cnn')"),
        ("ensemble", "branches", ["image_ml", "nope"], "'ensemble.branches' must be a non-empty list drawn from"),
        ("runtime", "n_jobs", 0, "'runtime.n_jobs' must be -1 (every core) or in [1, 256], not 0"),
        ("runtime", "n_jobs", -2, "'runtime.n_jobs' must be -1 (every core) or in [1, 256], not -2"),
    ],
)
def test_check_params_names_the_bad_key_in_any_section(
    tmp_path: Path, section: str, key: str, value: object, message: str
) -> None:
    path = _edited(tmp_path, section, key, value)
    with pytest.raises(MovieGenreError) as caught:
        check_params(path)
    assert message in str(caught.value)


def test_check_params_refuses_an_unknown_section(tmp_path: Path) -> None:
    loaded = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    loaded["trainig"] = {"epochs": 3}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(loaded))
    with pytest.raises(MovieGenreError, match="unknown section 'trainig'"):
        check_params(path)


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("data", "max_extract_gb", float("nan"), "'data.max_extract_gb' must be a finite number, not nan"),
        ("data", "max_compression_ratio", float("inf"), "'data.max_compression_ratio' must be a finite number"),
        ("data", "timeout_s", float("nan"), "'data.timeout_s' must be a finite number"),
        ("image_dl", "learning_rate", float("nan"), "'image_dl.learning_rate' must be a finite number"),
        ("prepare", "split", {"train": 0.7, "val": 0.2, "test": 0.15}, "'prepare.split' must add up to 1, not 1.05"),
        ("prepare", "split", {"train": 0.7, "val": 0.3}, "missing key 'prepare.split.test'"),
        (
            "prepare",
            "split",
            {"train": 0.7, "val": float("nan"), "test": 0.3},
            "'prepare.split.val' must be a finite number, not nan",
        ),
        (
            "prepare",
            "split",
            {"train": 1.0, "val": 0.0, "test": 0.0},
            "'prepare.split.val' must be in (0, inf], not 0.0",
        ),
    ],
)
def test_non_finite_numbers_and_bad_fractions_are_refused(
    tmp_path: Path, section: str, key: str, value: object, message: str
) -> None:
    path = _edited(tmp_path, section, key, value)  # safe_dump writes .nan / .inf, as a user would
    with pytest.raises(MovieGenreError) as caught:
        check_params(path)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data:\n  timeout_s: 30\n  timeout_s: 5\n", "duplicate key 'timeout_s' at line 3"),
        ("data:\n  source: &a [x, x]\n  sha256: *a\n", "alias *a at line 3: aliases are not accepted"),
        ("data: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper than 16 levels at line 1"),
        ("data: [\n", "not valid YAML (expected the node content"),
        (b"data: \xff\n", "not UTF-8 text"),
    ],
)
def test_params_yaml_is_read_strictly(tmp_path: Path, text: str | bytes, message: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(MovieGenreError) as caught:
        check_params(path)
    assert message in str(caught.value) and str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    path = tmp_path / "params.yaml"
    path.write_text("data:\n  source: x\n" + "\n".join(lines) + "\n")
    with pytest.raises(MovieGenreError) as caught:
        check_params(path)
    assert "aliases are not accepted" in str(caught.value) and len(str(caught.value)) < 300


def _alias_bomb(levels: int = 8, width: int = 9) -> str:
    """A valid-looking params file whose last anchor expands to ``width ** (levels + 1)`` values."""
    lines = ["data:", "  source: x", "a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def _two_gib_of_memory() -> None:
    """Expanding the bomb would need far more: the command then dies of MemoryError, never hangs."""
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def test_check_params_command_refuses_an_alias_bomb_in_one_line_within_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(_alias_bomb())
    done = subprocess.run(
        [sys.executable, "-m", "moviegenre.cli", "check-params", "--params", str(path)],
        capture_output=True, text=True, preexec_fn=_two_gib_of_memory,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: {path}: not valid YAML (alias *a0 at line 4: aliases are not accepted; write the value out)"
    ]


def test_the_pre_commit_hook_checks_params_yaml_with_check_params(tmp_path: Path) -> None:
    config = yaml.safe_load((PROJECT_ROOT / ".pre-commit-config.yaml").read_text())
    hook = next(h for repo in config["repos"] for h in repo["hooks"] if h["id"] == "check-params")
    assert re.search(hook["files"], "params.yaml") and not re.search(hook["files"], "tests/params.yaml")
    assert hook.get("pass_filenames", True)
    command = shlex.split(hook["entry"])
    if not (PROJECT_ROOT / command[0]).exists():
        pytest.skip(f"{command[0]}: not installed (make install)")
    bomb = tmp_path / "params.yaml"
    bomb.write_text(_alias_bomb())
    refused = subprocess.run([*command, str(bomb)], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert refused.returncode == 2 and "aliases are not accepted" in refused.stderr
    shipped = subprocess.run([*command, "params.yaml"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert shipped.returncode == 0, shipped.stderr
