"""What one movie given to `moviegenre predict` or `moviegenre serve` may be: the limits both apply.

The command line and the server take the same poster and plot, so they refuse the same ones:
a plot longer than ``MAX_PLOT_CHARS``, one that is not Unicode text (a lone surrogate, which
is what a JSON ``"\\ud800"`` or a non-UTF-8 command-line argument becomes), one with nothing
visible in it, and a poster over ``MAX_POSTER_MB`` (the server's default ``--max-upload-mb``)
or over ``data.posters``' pixel limit. They live here, below both, so that the server needs
nothing from the command line.
"""

from __future__ import annotations

import unicodedata

from moviegenre.core.errors import MovieGenreError

MAX_PLOT_CHARS = 100_000  # a synopsis, not a book: a longer one costs the encoders memory for nothing
MAX_PLOT_FILE_BYTES = 4 * MAX_PLOT_CHARS  # UTF-8 takes at most 4 bytes a character
MAX_POSTER_MB = 10.0  # a poster's bytes, and the server's default request body (--max-upload-mb)

# Characters that print nothing on their own: controls, format characters (zero-width spaces,
# joiners, direction marks, BOM), surrogates, private-use and unassigned code points,
# separators (every kind of space), and combining marks, which only change the character
# before them.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp", "Mn", "Me"})
# Letters and symbols that Unicode classes as such but that render as blank space.
_BLANK_CHARACTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


class PlotTooLong(MovieGenreError):
    """A plot over ``MAX_PLOT_CHARS`` characters (the server answers 413, not 400)."""


def visible(character: str) -> bool:
    return unicodedata.category(character) not in _INVISIBLE_CATEGORIES and character not in _BLANK_CHARACTERS


def check_plot(plot: str) -> None:
    """Refuse a plot that is too long, is not Unicode text, or shows nothing: a plot of
    zero-width spaces or NULs would be scored as if it were a synopsis."""
    if len(plot) > MAX_PLOT_CHARS:
        raise PlotTooLong(f"the plot has {len(plot):,} characters; the limit is {MAX_PLOT_CHARS:,}")
    try:
        plot.encode("utf-8")
    except UnicodeEncodeError as exc:  # the message must not carry the surrogate: it cannot be printed
        raise MovieGenreError(
            f"the plot is not UTF-8 text: character {exc.start + 1} is U+{ord(plot[exc.start]):04X}, a lone surrogate"
        ) from None
    if not any(visible(character) for character in plot):
        raise MovieGenreError("the plot is empty")
