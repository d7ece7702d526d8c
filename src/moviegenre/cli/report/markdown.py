"""How the report writes values, Δs and verdicts, and the folded table: one place for the
number formats, so that every table rounds the same way."""

from __future__ import annotations

import textwrap

from moviegenre.cli.report.noise import Verdict

WIDTH = 100  # a paragraph's lines: Markdown joins them, and a diff or a terminal shows them whole


def fmt(value: object) -> str:
    """A param, count or timing: four significant digits, whole numbers as they are."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def fmt_auc(value: float | None) -> str:
    """An AUC to four decimals, the precision its noise allows; — where a revision has none."""
    return "—" if value is None else f"{value:.4f}"


def fmt_delta(delta: float) -> str:
    """A signed Δ; six decimals when four would show a machine-noise Δ as +0.0000."""
    return f"{delta:+.4f}" if abs(delta) >= 5e-5 else f"{delta:+.6f}"


def delta_cell(verdict: Verdict) -> str:
    """The Δ with its verdict in words; bold only when it is real."""
    if verdict.kind in ("new", "removed"):
        return verdict.kind
    if verdict.kind == "unchanged":
        return "0"
    delta = fmt_delta(verdict.delta or 0.0)
    return {
        "real": f"**{delta}** outside noise",
        "noise": f"{delta} within noise",
        "machine": f"{delta} machine noise",
        "unjudged": f"{delta} (no interval)",
    }[verdict.kind]


def paragraph(text: str, width: int = WIDTH, indent: str = "") -> list[str]:
    """A paragraph (or a list item, with ``indent``) as lines of at most ``width``; a word longer
    than that stays whole."""
    return textwrap.wrap(text, width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)


def details(summary: str, header: str, rows: list[tuple[str, ...]]) -> list[str]:
    """A folded table: what moves every run stays one click away instead of drowning the AUCs."""
    if not rows:
        return []
    columns = header.count("|") - 1
    lines = ["<details>", f"<summary>{summary}</summary>", "", header, "|" + "---|" * columns]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, "", "</details>", ""]
