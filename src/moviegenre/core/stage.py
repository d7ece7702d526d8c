"""What every stage script shares: logging set-up and the one-line error contract."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from moviegenre.core.errors import MovieGenreError
from moviegenre.core.files import os_error_text
from moviegenre.core.runtime import quiet_tensorflow

log = logging.getLogger("moviegenre")


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def run(main: Callable[[], None]) -> None:
    """Run a stage's ``main``; a MovieGenreError becomes 'error: ...' and exit status 2.

    So does an OSError that no write helper turned into one (a library writing its own file
    on a full disk, a file that cannot be read): the user gets the file and the reason, not
    a traceback through the library. A stage that imports TensorFlow does so with its start-up
    chatter off stderr (``quiet_tensorflow``).
    """
    setup_logging()
    try:
        with quiet_tensorflow.first_import_filtered():
            main()
    except MovieGenreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:
        log.debug("the OSError behind the error line", exc_info=True)
        print(f"error: {os_error_text(exc)}", file=sys.stderr)
        sys.exit(2)
