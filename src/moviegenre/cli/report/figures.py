"""Base and head figures side by side, every link relative to the report's folder so that it
works wherever --out points (a CI artifact, a local folder)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from moviegenre.cli.report.revisions import FIGURES, Tree
from moviegenre.core.files import atomic_path


def link(target: Path, start: Path) -> str:
    """A Markdown link from the report's folder: works wherever --out points."""
    return quote(Path(os.path.relpath(target, start)).as_posix())


def figure_table(base: Tree, head: Tree, root: Path, out: Path | None, base_label: str) -> list[str]:
    """Base and head figures side by side. Head's are linked where the pipeline wrote them; base's
    are written beside the report (``<out stem>_figures/base/``), since they exist only in git."""
    names = sorted({n for n in [*head.names(FIGURES), *base.names(FIGURES)] if n.endswith(".png")})
    if not names:
        return []
    start = out.resolve().parent if out else Path.cwd()
    lines = ["| figure | base " + base_label + " | this change |", "|---|---|---|"]
    for name in names:
        stem = Path(name).stem
        base_cell = "—"
        data = base.read(f"{FIGURES}/{name}")
        if data is not None and out is not None:
            target = start / f"{out.stem}_figures" / "base" / name
            with atomic_path(target) as tmp:
                tmp.write_bytes(data)
            base_cell = f"![{stem} (base)]({link(target, start)})"
        elif data is not None:
            base_cell = "(written with --out)"
        head_file = root.resolve() / FIGURES / name
        head_cell = f"![{stem}]({link(head_file, start)})" if head_file.is_file() else "—"
        lines.append(f"| {stem} | {base_cell} | {head_cell} |")
    return lines
