"""Installs that reproduce: the lock files cover what pyproject.toml and package.json ask for,
this environment is what the lock says, and the tooling targets exist."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from helpers.project import PROJECT_ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LOCK = PROJECT_ROOT / "requirements.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*(.*?))?\s*\\$")


def pins() -> dict[str, list[tuple[str, str]]]:
    """Package -> [(version, marker)] of requirements.lock; every pin carries hashes."""
    found: dict[str, list[tuple[str, str]]] = {}
    lines = LOCK.read_text().splitlines()
    for i, line in enumerate(lines):
        match = PIN.match(line)
        if match:
            assert lines[i + 1].strip().startswith("--hash=sha256:"), line
            found.setdefault(canonicalize_name(match[1]), []).append((match[2], match[3] or ""))
    return found


def requirements() -> list[Requirement]:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in [*project["dependencies"], *project["optional-dependencies"]["dev"]]]


def test_every_requirement_is_pinned_in_the_lock_within_its_range() -> None:
    locked = pins()
    for requirement in requirements():
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        versions = [v for v, _ in locked.get(canonicalize_name(requirement.name), [])]
        assert versions, f"{requirement.name} is not in requirements.lock: run `make lock`"
        assert any(requirement.specifier.contains(v, prereleases=True) for v in versions), (requirement, versions)


def test_this_environment_is_what_the_lock_says() -> None:
    """`make install` installed from the lock: each locked package for this Python has its pinned version."""
    from packaging.markers import Marker

    wrong = []
    for name, entries in pins().items():
        for version, marker in entries:
            if marker and not Marker(marker).evaluate():
                continue
            try:
                installed = metadata.version(name)
            except metadata.PackageNotFoundError:
                wrong.append(f"{name}: not installed")
                continue
            if installed != version:
                wrong.append(f"{name}: {installed} installed, {version} locked")
    assert wrong == []


def test_the_plot_scripts_are_pinned_with_their_integrity() -> None:
    wanted = json.loads((PROJECT_ROOT / "package.json").read_text())["dependencies"]
    locked = json.loads((PROJECT_ROOT / "package-lock.json").read_text())["packages"]
    for name, version in wanted.items():
        entry = locked[f"node_modules/{name}"]
        assert entry["version"] == version and entry["integrity"].startswith("sha512-"), name


def test_make_help_lists_the_targets() -> None:
    done = subprocess.run(["make", "--no-print-directory", "help"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    listed = [line.split()[1] for line in done.stdout.splitlines() if line.strip().startswith("make ")]
    assert {"install", "repro", "test", "lint", "lock", "hooks", "docs", "clean"} <= set(listed)


def test_the_pre_commit_hooks_are_a_valid_config_of_installed_tools() -> None:
    config = PROJECT_ROOT / ".pre-commit-config.yaml"
    done = subprocess.run([sys.executable, "-m", "pre_commit", "validate-config", str(config)], capture_output=True)
    assert done.returncode == 0, done.stdout + done.stderr
    import yaml

    hooks = [hook for repo in yaml.safe_load(config.read_text())["repos"] for hook in repo["hooks"]]
    assert {hook["id"] for hook in hooks} == {"ruff", "ruff-format", "import-contracts", "mypy", "check-params"}
    for hook in hooks:
        tool = Path(sys.executable).parent / Path(hook["entry"].split()[0]).name
        assert tool.is_file(), f"{hook['id']}: {tool} is not installed"
