"""Which project files each dvc.yaml stage runs: its script and every module it imports.

The closure follows the project's own imports through the AST, lazy (function-level)
imports included, and counts a package's ``__init__.py`` whenever one of its modules is
imported, as Python runs it. ``python tests/stage_imports.py`` prints each stage's code deps
in dvc.yaml's form, so a new stage's list is copied, not typed.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
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


def closure(script: Path, src: Path = SRC) -> set[Path]:
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(imports_of(path, src) - seen)
    return seen


def stage_code(root: Path = ROOT) -> dict[str, list[str]]:
    """Stage name -> the project files it runs (relative paths, sorted)."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    code = {}
    for name, stage in stages.items():
        script = next(word for word in stage["cmd"].split() if word.endswith(".py"))
        files = closure((root / script).resolve(), (root / "src").resolve())
        code[name] = sorted(str(p.relative_to(root.resolve())) for p in files)
    return code


def code_deps(stage: dict) -> list[str]:
    """The deps of a dvc.yaml stage that are code (under stages/ or src/)."""
    deps = [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]
    return [d.rstrip("/") for d in deps if d.startswith(("stages/", "src/"))]


if __name__ == "__main__":
    for stage_name, files in stage_code().items():
        print(f"  {stage_name}:")
        print("\n".join(f"      - {f}" for f in files))
    sys.exit(0)
