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
# what the repository's prose must not say: which ticket asked for a change, whether a goal was reached,
# which commit made it (a hex hash after "commit", also across a line break)
NARRATION = re.compile(r"issue [0-9]|target (is|was) (not )?met|\bcommits?\s+[0-9a-f]{7,40}\b", re.IGNORECASE)
# A dated result's stamp, `*2026-12-03 · command · commit 6c23c6f · machine*`, names the commit it measured:
# provenance of a figure, not narration, so it is the one place a commit hash may stand.
RESULT_STAMP = re.compile(r"\*\d{4}-\d{2}-\d{2} ·[^*]*\*")
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
            if file.suffix not in (".md", ".py", ".yaml", ".yml", ".html") or file == Path(__file__).resolve():
                continue  # this file quotes what it looks for
            text = file.read_text(errors="replace")
            if file.suffix == ".md":  # blanked, not removed, so that line numbers stay right
                text = RESULT_STAMP.sub(lambda stamp: re.sub(r"[^\n]", " ", stamp.group()), text)
            found += [
                f"{file.relative_to(PROJECT_ROOT)}:{text.count(chr(10), 0, hit.start()) + 1}: {hit.group()!r}"
                for hit in NARRATION.finditer(text)
            ]
    assert found == []


def test_the_narration_check_catches_a_commit_but_not_a_results_stamp() -> None:
    assert NARRATION.search("Its shape (commit 4ba0100):")
    assert NARRATION.search("the figures of Commit\n4ba0100e")
    assert not NARRATION.search("commit the lock file")  # the verb, no hash after it
    stamp = "*2026-12-03 · `make repro` · commit 6c23c6f ·\nEPYC-2*: 69 of 81 outputs, commit 1e9290e"
    blanked = RESULT_STAMP.sub(lambda found: re.sub(r"[^\n]", " ", found.group()), stamp)
    assert "6c23c6f" not in blanked and blanked.count("\n") == 1
    assert [hit.group() for hit in NARRATION.finditer(blanked)] == ["commit 1e9290e"]


def test_the_docs_site_builds_strictly(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    pages = {p.relative_to(tmp_path / "site").as_posix() for p in (tmp_path / "site").rglob("index.html")}
    assert {f"{page.stem}/index.html" for page in DOCS.glob("*.md") if page.stem != "index"} <= pages
