"""What every stage script shares: logging set-up and the one-line error contract."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from moviegenre.core.errors import MovieGenreError

log = logging.getLogger("moviegenre")


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def run(main: Callable[[], None]) -> None:
    """Run a stage's ``main``; a MovieGenreError becomes 'error: ...' and exit status 2."""
    setup_logging()
    try:
        main()
    except MovieGenreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
