"""Genre names: one spelling per genre, whatever the source wrote."""

from __future__ import annotations

import re

IMDB_GENRES = (
    "Action",
    "Adult",
    "Adventure",
    "Animation",
    "Biography",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Family",
    "Fantasy",
    "Film-Noir",
    "Game-Show",
    "History",
    "Horror",
    "Music",
    "Musical",
    "Mystery",
    "News",
    "Reality-TV",
    "Romance",
    "Sci-Fi",
    "Short",
    "Sport",
    "Talk-Show",
    "Thriller",
    "War",
    "Western",
)

_ALIASES = {
    "sciencefiction": "Sci-Fi",
    "noir": "Film-Noir",
    "biopic": "Biography",
    "sports": "Sport",
    "realitytv": "Reality-TV",
    "animated": "Animation",
}


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.casefold())


_CANONICAL = {_key(g): g for g in IMDB_GENRES} | _ALIASES


def normalise(name: str) -> str | None:
    """The canonical IMDb spelling of ``name`` ('sci fi' -> 'Sci-Fi'), or None if unknown."""
    return _CANONICAL.get(_key(name))
