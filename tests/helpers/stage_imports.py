"""Which project files each dvc.yaml stage runs, and which of them its deps do not cover.

Stages come as DVC resolves them (``train@<branch>`` expanded from the registry). A stage
runs its script and every project module the script imports, lazy (function-level) imports
included, following the project's imports through the AST; a package's ``__init__.py`` counts
whenever one of its modules is imported, as Python runs it. A train stage also runs its
branch's module, which the registry imports by name (``importlib``), so the closure of that
module is added. A dep covers a file when it is that file or a folder above it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"


def module_file(name: str, src: Path = SRC) -> Path | None:
    base = src.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports_of(path: Path, src: Path = SRC) -> set[Path]:
    tree = ast.parse(path.read_text(), str(path))
    package = list(path.relative_to(src).parent.parts) if src in path.parents else []
    found: set[Path] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            names = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        for name in names:
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                found_file = module_file(".".join(parts[:i]), src)
                if found_file is not None:
                    found.add(found_file)
    return found


def closure(starts: Iterable[Path], src: Path = SRC) -> set[Path]:
    seen: set[Path] = set()
    todo = list(starts)
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(imports_of(path, src) - seen)
    return seen


def resolved_stages(root: Path = ROOT) -> dict[str, dict]:
    """Stage name -> ``{"cmd", "deps", "params", "outs"}``, as DVC resolves dvc.yaml."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        stages = {}
        for stage in repo.index.stages:
            params = [key for dep in stage.deps if hasattr(dep, "params") for key in (dep.params or [])]
            paths = [str(dep.def_path) for dep in stage.deps if not hasattr(dep, "params")]
            outs = [str(out.def_path) for out in stage.outs]
            stages[stage.name] = {"cmd": stage.cmd, "deps": paths, "params": params, "outs": outs}
        return stages


def branch_module(branch: str, root: Path = ROOT) -> Path:
    """The file of a branch's class, by the registry's ``module:Class``."""
    import yaml

    target = yaml.safe_load((root / "src/moviegenre/branches/registry.yaml").read_text())["branches"][branch]["class"]
    found = module_file(target.partition(":")[0], root / "src")
    assert found is not None, f"registry.yaml: {branch}'s module {target} is not in src/"
    return found


def stage_code(stage_name: str, cmd: str, root: Path = ROOT) -> list[str]:
    """The project files a stage runs (relative paths, sorted)."""
    words = cmd.split()
    if "-m" in words:  # python -m package: its __main__.py runs
        package = words[words.index("-m") + 1]
        starts = [(root / "src" / Path(*package.split(".")) / "__main__.py").resolve()]
    else:
        starts = [(root / next(word for word in words if word.endswith(".py"))).resolve()]
    if stage_name.startswith("train@"):
        starts.append(branch_module(stage_name.partition("@")[2], root).resolve())
    files = closure(starts, (root / "src").resolve())
    return sorted(str(p.relative_to(root.resolve())) for p in files)


def covered(path: str, deps: Iterable[str]) -> bool:
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


def uncovered(files: Iterable[str], deps: Iterable[str]) -> list[str]:
    """The files that no dep covers."""
    deps = list(deps)
    return [f for f in files if not covered(f, deps)]
