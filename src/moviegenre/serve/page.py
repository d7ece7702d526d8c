"""The page at ``GET /``: a form to upload a poster and paste a plot, which calls ``POST /predict``.

It is a static file, ``static/index.html``, shipped as package data (pyproject.toml), so that it
can be edited and checked as HTML; it loads nothing from another origin and works offline.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def page_html() -> str:
    """The page, read once from the package."""
    return resources.files(__package__).joinpath("static", "index.html").read_text(encoding="utf-8")
