"""`moviegenre predict`'s poster and plot checks: the server's limits, one error line, before any
model loads (these run where no artifact exists, so a check that let the input through would
end on the missing artifacts' error instead)."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from helpers import PROJECT_ROOT

from moviegenre.cli.predict_output import read_plot
from moviegenre.core.errors import MovieGenreError
from moviegenre.predict.inputs import MAX_PLOT_CHARS, MAX_POSTER_MB, PlotTooLong, check_plot
from moviegenre.serve.limits import DEFAULT_MAX_UPLOAD_MB


def _predict(cwd: Path, *args: str | bytes) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "moviegenre.cli", "predict", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_a_non_utf8_argument_is_one_error_line(tmp_path: Path) -> None:
    """A byte that is not UTF-8 reaches Python as a lone surrogate, which TensorFlow cannot convert."""
    done = _predict(tmp_path, "--plot", b"\xff")
    assert (done.returncode, done.stderr) == (
        2, "error: --plot: the plot is not UTF-8 text: character 1 is U+DCFF, a lone surrogate\n"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("plot", "size", "message"),
    [
        ("\u200b\u200b\u200b", None, "the plot is empty"),
        ("\0\0\0", None, "the plot is empty"),
        ("ghost " * 20_000, None, "the plot has 120,000 characters; the limit is 100,000"),
        (None, 54_000_000, "over 400,000 bytes; a plot is at most 100,000 characters"),
    ],
    ids=["zero-width-spaces", "nuls", "over-100k-characters", "54-mb"],
)
def test_a_plot_file_the_server_would_refuse_is_one_line_naming_it(
    tmp_path: Path, plot: str | None, size: int | None, message: str
) -> None:
    path = tmp_path / "plot.txt"
    if plot is not None:
        path.write_text(plot)
    else:
        with path.open("wb") as sparse:
            sparse.truncate(size)
    done = _predict(tmp_path, "--plot-file", str(path))
    assert (done.returncode, done.stderr) == (2, f"error: {path}: {message}\n")


def test_a_plot_argument_over_the_limit_is_one_line(tmp_path: Path) -> None:
    done = _predict(tmp_path, "--plot", "x" * (MAX_PLOT_CHARS + 1))
    assert (done.returncode, done.stderr) == (
        2,
        "error: --plot: the plot has 100,001 characters; the limit is 100,000\n",
    )


def test_a_poster_over_the_servers_body_limit_is_one_line_naming_it(tmp_path: Path) -> None:
    poster = tmp_path / "poster.jpg"
    with poster.open("wb") as sparse:
        sparse.truncate(10_000_001)
    done = _predict(tmp_path, "--poster", str(poster))
    assert (done.returncode, done.stderr) == (2, f"error: {poster}: 10,000,001 bytes; a poster is at most 10 MB\n")


def test_the_command_line_and_the_server_share_the_limits() -> None:
    assert DEFAULT_MAX_UPLOAD_MB == MAX_POSTER_MB


def test_a_huge_plot_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "plot.txt"
    path.write_bytes(b"ghost " * 9_000_000)  # 54 MB
    tracemalloc.start()
    try:
        with pytest.raises(MovieGenreError, match="over 400,000 bytes"):
            read_plot(None, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


@pytest.mark.parametrize(
    "plot",
    ["", " \t\r\n", "\u200b\u200c\u200d\u2060\ufeff", "\0\x01\x7f", "\u00a0\u2003\u3000", "\u0301\u0301",
     "\u3164\u2800", "\ue000"],
    ids=["empty", "whitespace", "zero-width", "controls", "wide-spaces", "combining-marks-alone", "blank-letters",
         "private-use"],
)  # fmt: skip
def test_a_plot_with_nothing_visible_is_empty(plot: str) -> None:
    with pytest.raises(MovieGenreError, match=r"^the plot is empty$"):
        check_plot(plot)


@pytest.mark.parametrize("plot", ["a", "\u200b\0ghost", "幽霊", "🎬", "١٢", "e\u0301"])
def test_a_plot_with_something_visible_is_taken(plot: str) -> None:
    check_plot(plot)


def test_a_lone_surrogate_and_a_long_plot_are_refused() -> None:
    with pytest.raises(MovieGenreError, match="character 2 is U\\+D800, a lone surrogate"):
        check_plot("x\ud800")
    with pytest.raises(PlotTooLong):
        check_plot("x" * (MAX_PLOT_CHARS + 1))
