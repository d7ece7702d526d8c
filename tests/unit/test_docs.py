"""The documentation: a short README whose links resolve, a docs site that builds strictly, and
prose about the software rather than about how it was made."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from helpers.project import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
DOCS = PROJECT_ROOT / "docs"
# what the repository's prose must not say: which ticket asked for a change, whether a goal was reached
NARRATION = re.compile(r"issue [0-9]|target (is|was) (not )?met", re.IGNORECASE)
PROSE = ("README.md", "docs", "src", "tests", "benchmarks")


def test_the_readme_is_short() -> None:
    assert len(README.read_text().splitlines()) <= 250


def test_the_readmes_links_resolve() -> None:
    text = README.read_text()
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" not in target:
            assert (PROJECT_ROOT / target).exists(), target


def test_no_page_or_module_narrates_issues_or_targets() -> None:
    found = []
    for root in PROSE:
        path = PROJECT_ROOT / root
        for file in [path] if path.is_file() else sorted(path.rglob("*")):
            if file.suffix not in (".md", ".py", ".yaml", ".yml", ".html"):
                continue
            lines = file.read_text(errors="replace").splitlines()
            found += [
                f"{file.relative_to(PROJECT_ROOT)}:{n}" for n, line in enumerate(lines, 1) if NARRATION.search(line)
            ]
    assert found == []


def test_the_docs_site_builds_strictly(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    pages = {p.relative_to(tmp_path / "site").as_posix() for p in (tmp_path / "site").rglob("index.html")}
    assert {f"{page.stem}/index.html" for page in DOCS.glob("*.md") if page.stem != "index"} <= pages
