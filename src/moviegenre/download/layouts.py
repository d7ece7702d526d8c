"""Read the two source layouts into one raw table of movies.

MM-IMDb: ``dataset/<id>.json`` (+ ``dataset/<id>.jpeg``). Generic CSV: ``movies.csv`` with
``id,title,year,plot,genres,poster``. Both become the same columns so that ``prepare`` has one
input to validate. A record that cannot be read is kept with its ``problem`` so that prepare
counts it as a drop instead of it vanishing here.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pandas as pd

from moviegenre.core.errors import MovieGenreError

log = logging.getLogger(__name__)

RAW_COLUMNS = ["id", "title", "year", "plot", "genres", "poster", "problem"]
CSV_COLUMNS = ["id", "title", "year", "plot", "genres", "poster"]
POSTER_SUFFIXES = (".jpeg", ".jpg", ".png")
# MM-IMDb's longest genre list is under 300 characters; a cell far past that is not one.
MAX_GENRES_CELL = 10_000
_QUOTED = r"'(?:[^'\\]|\\.)*'" + "|" + r'"(?:[^"\\]|\\.)*"'  # one quoted name, backslash escapes
# After each name comes ',' or ']': no two parts can match the same text, so a failed match
# costs one pass, never a backtracking search.
_QUOTED_LIST = re.compile(rf"\[\s*(?:(?:{_QUOTED})\s*(?:,\s*(?:{_QUOTED})\s*)*(?:,\s*)?)?\]", re.DOTALL)


def find_layout(root: Path, name: str | None = None) -> tuple[str, Path]:
    """Locate the dataset inside an unpacked source: ('mmimdb', dataset dir) or ('csv', file).

    ``name`` is how the error calls the source: ``root`` may be a temporary folder that is
    gone by the time the user reads the message.
    """
    candidates = sorted(root.rglob("movies.csv"), key=lambda p: len(p.parts))
    if candidates:
        return "csv", candidates[0]
    for directory in sorted((p for p in root.rglob("dataset") if p.is_dir()), key=lambda p: len(p.parts)):
        if any(directory.glob("*.json")):
            return "mmimdb", directory
    if any(root.glob("*.json")):
        return "mmimdb", root
    raise MovieGenreError(
        f"{name or root}: no dataset found: expected dataset/<id>.json files (MM-IMDb) or a movies.csv"
    )


def read_mmimdb(dataset_dir: Path) -> pd.DataFrame:
    """One row per ``<id>.json``; the longest of its plot strings is the plot."""
    rows = []
    for meta in sorted(dataset_dir.glob("*.json")):
        movie_id = meta.stem
        poster = next((meta.with_suffix(s) for s in POSTER_SUFFIXES if meta.with_suffix(s).exists()), None)
        row: dict[str, Any] = {
            "id": movie_id,
            "title": None,
            "year": None,
            "plot": "",
            "genres": [],
            "problem": None,
            "poster": str(poster) if poster else None,
        }
        try:
            record = json.loads(meta.read_text(encoding="utf-8"))
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            plots = record.get("plot") or []
            if isinstance(plots, str):
                plots = [plots]
            title = _str_or_none(record.get("title"))
            plot = max((p for p in plots if isinstance(p, str)), key=len, default="")
            genres = [g for g in record.get("genres") or [] if isinstance(g, str)]
            for text in (title or "", plot, *genres):
                text.encode("utf-8")  # JSON's \ud800 escapes decode to text no file can hold
        except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than the parser's stack
            row["problem"] = "malformed_record"
            log.warning("%s: malformed JSON (%s)", meta, " ".join(str(exc).split())[:200])
            rows.append(row)
            continue
        row.update(title=title, year=_year(record.get("year")), plot=plot, genres=genres)
        rows.append(row)
    return pd.DataFrame(rows, columns=RAW_COLUMNS)


def read_csv(csv_path: Path, name: str | None = None) -> pd.DataFrame:
    """``movies.csv``: genres as 'A|B', 'A,B' or a Python-style list "['A', 'B']".

    ``name`` is how errors call the file (inside the user's source, not a temporary folder).
    """
    shown = name or str(csv_path)
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise MovieGenreError(f"{shown}: not a readable CSV ({' '.join(str(exc).split())})") from exc
    missing = [c for c in CSV_COLUMNS if c not in table.columns and c != "poster"]
    if missing:
        raise MovieGenreError(f"{shown}: missing column(s) {', '.join(missing)} (need {','.join(CSV_COLUMNS)})")
    if "poster" not in table.columns:
        table["poster"] = ""
    genres = []
    for row, (movie_id, cell) in enumerate(zip(table["id"], table["genres"], strict=True), start=1):
        try:
            genres.append(parse_genre_field(cell))
        except ValueError as exc:
            raise MovieGenreError(f"{shown}: row {row} (id {movie_id[:40]!r}): genres {exc}") from None
    out = pd.DataFrame(
        {
            "id": table["id"].str.strip(),
            "title": [_str_or_none(t.strip()) for t in table["title"]],
            "year": [_year(y) for y in table["year"]],
            "plot": table["plot"].fillna(""),
            "genres": genres,
            "poster": [_str_or_none(p.strip()) for p in table["poster"]],
            "problem": None,
        },
        columns=RAW_COLUMNS,
    )
    return out


def parse_genre_field(value: str) -> list[str]:
    """The genre names of a CSV cell: 'A|B', 'A,B', "['A', 'B']" (Python or JSON quotes) or '[A, B]'.

    A cell is text from the source, never evaluated: a list of quoted names is matched by one
    regular expression, anything else in brackets is split like a plain cell. A cell longer
    than ``MAX_GENRES_CELL`` raises ValueError; so nothing in it can cost more than one pass.
    """
    value = (value or "").strip()
    if len(value) > MAX_GENRES_CELL:
        raise ValueError(f"cell of {len(value):,} characters: longer than any list of genres ({MAX_GENRES_CELL:,})")
    if value.startswith("["):
        if _QUOTED_LIST.fullmatch(value):
            return [_unquote(q) for q in re.findall(_QUOTED, value, re.DOTALL)]
        value = value.strip("[]")
    separator = "|" if "|" in value else ","
    return [g.strip().strip("'\"") for g in value.split(separator) if g.strip().strip("'\"")]


def _unquote(quoted: str) -> str:
    """'Children\\'s' -> Children's: drop the quotes, keep what each backslash escapes."""
    return re.sub(r"\\(.)", r"\1", quoted[1:-1], flags=re.DOTALL)


def _str_or_none(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def _year(value: object) -> float | None:
    try:
        return float(int(str(value).strip()[:4]))
    except (TypeError, ValueError):
        return None
