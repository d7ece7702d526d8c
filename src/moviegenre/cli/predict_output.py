"""The two faces of `moviegenre predict`: one movie as a table, a dataset as a CSV.

Arguments are checked before any model loads, so a typo costs milliseconds, not the
seconds TensorFlow takes to import.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from moviegenre.core.errors import MovieGenreError
from moviegenre.core.files import atomic_path, check_output, write_json
from moviegenre.core.paths import ProjectPaths
from moviegenre.data.posters import poster_problem
from moviegenre.predict.answer import movie_json, seen_text
from moviegenre.predict.inputs import MAX_PLOT_CHARS, MAX_PLOT_FILE_BYTES, MAX_POSTER_MB, check_plot

if TYPE_CHECKING:
    from moviegenre.download.settings import DataSettings

log = logging.getLogger(__name__)


def read_plot(plot: str | None, plot_file: Path | None) -> str | None:
    """The plot given as text or in a file, checked as the server checks one (``predict.inputs``);
    a file is read only up to what a plot within the limit can take."""
    if plot is not None and plot_file is not None:
        raise MovieGenreError("give --plot or --plot-file, not both")
    if plot_file is not None:
        if not plot_file.is_file():
            raise MovieGenreError(f"{plot_file}: plot file not found")
        too_big = f"{plot_file}: over {MAX_PLOT_FILE_BYTES:,} bytes; a plot is at most {MAX_PLOT_CHARS:,} characters"
        try:
            if plot_file.stat().st_size > MAX_PLOT_FILE_BYTES:
                raise MovieGenreError(too_big)
            with plot_file.open("rb") as stream:
                raw = stream.read(MAX_PLOT_FILE_BYTES + 1)  # a file that grew since: still bounded
        except OSError as exc:
            raise MovieGenreError(f"{plot_file}: cannot read the plot file ({exc.strerror or exc})") from exc
        if len(raw) > MAX_PLOT_FILE_BYTES:
            raise MovieGenreError(too_big)
        plot = raw.decode("utf-8", errors="replace")
    if plot is not None:
        try:
            check_plot(plot)
        except MovieGenreError as exc:
            raise MovieGenreError(f"{plot_file or '--plot'}: {exc}") from None
    return plot


def check_poster(poster: Path | None) -> None:
    """A poster the server would take: at most ``MAX_POSTER_MB``, an image within the pixel limit."""
    if poster is None:
        return
    if poster.is_file() and (size := poster.stat().st_size) > MAX_POSTER_MB * 1e6:
        raise MovieGenreError(f"{poster}: {size:,} bytes; a poster is at most {MAX_POSTER_MB:g} MB")
    problem = poster_problem(poster)
    if problem == "missing":
        raise MovieGenreError(f"{poster}: poster file not found")
    if problem:
        raise MovieGenreError(f"{poster}: not a readable image ({problem.replace('_', ' ')})")


def check_out(out: Path, source: str | None = None) -> None:
    """--out must be a new or regular writable file, neither the input nor inside it; checked
    before anything is fetched.

    The input is located as the download will locate it (``~``, ``file://``, a path relative
    to the project, links followed), so no spelling of the dataset's own path slips past.
    """
    check_output(out, "--out")
    if source is not None and _is_input(out, source):
        raise MovieGenreError(f"{out}: is part of the dataset being predicted; give --out a path outside {source}")
    if out.exists() and not os.access(out, os.W_OK):
        raise MovieGenreError(f"{out}: not writable")


def _is_input(out: Path, source: str) -> bool:
    """Whether writing ``out`` would replace ``source`` or a file inside it (a remote source: never)."""
    from moviegenre.download.sources import local_path

    try:
        given = local_path(source)
    except MovieGenreError:
        return False  # not a path or URL: the download names the problem
    if given is None or not given.exists():
        return False
    target = out.parent.resolve() / out.name  # out itself is no link (check_output)
    if target == given.resolve() or target.is_relative_to(given.resolve()):
        return True
    return out.exists() and os.path.samefile(out, given)  # a hard link of the archive


@dataclass(frozen=True)
class FetchBounds:
    """How ``predict --dataset`` fetches a source and the posters behind URLs (its options).

    The deadlines are wall-clock bounds on a whole download, retries included, as
    ``data.deadline_s`` and ``data.poster_deadline_s`` are for the download stage. The archive
    limits are not options: those params.yaml ships, which let the full MM-IMDb archive through.
    """

    timeout_s: float = 30.0
    retries: int = 4
    poster_deadline_s: float = 120.0
    max_poster_mb: float = 240.0
    deadline_s: float = 14_400.0  # an http(s) source, as params.yaml's data.deadline_s
    max_extract_gb: float = 32.0
    max_members: int = 200_000
    max_compression_ratio: float = 100.0

    def data(self, source: str) -> DataSettings:
        """The download's settings: these bounds, checked by ``check`` (a timeout under a second included)."""
        from moviegenre.download.settings import DataSettings

        return DataSettings.model_construct(
            source=source, sha256=None, limit=None, poster_workers=8, timeout_s=self.timeout_s,
            retries=self.retries, deadline_s=self.deadline_s, max_poster_mb=self.max_poster_mb,
            poster_deadline_s=self.poster_deadline_s, max_extract_gb=self.max_extract_gb,
            max_members=self.max_members, max_compression_ratio=self.max_compression_ratio,
        )  # fmt: skip

    def check(self) -> None:
        limits = (
            ("--timeout-s", self.timeout_s, 0.1),
            ("--poster-deadline-s", self.poster_deadline_s, 1.0),
            ("--max-poster-mb", self.max_poster_mb, 0.01),
            ("--deadline-s", self.deadline_s, 1.0),
        )
        for name, value, lo in limits:
            if not math.isfinite(value) or value < lo:
                raise MovieGenreError(f"{name} must be a finite number >= {lo:g}, not {value}")
        if not 0 <= self.retries <= 20:
            raise MovieGenreError(f"--retries must be in [0, 20], not {self.retries}")


class Terminated(Exception):
    """SIGTERM, raised where the program is so that every temporary is cleaned up on the way out."""


@contextlib.contextmanager
def terminate_cleanly() -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        raise Terminated(f"stopped by signal {signal.Signals(signum).name}; nothing was written")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def predict_one(
    paths: ProjectPaths, poster: Path | None, plot: str | None, plot_file: Path | None, *, with_branches: bool,
    top: int = 0, as_json: bool = False,
) -> str:  # fmt: skip
    """The genre set, then a table of genres sorted by ensemble probability (``*``: in the set);
    or the same as one JSON object."""
    if top < 0:
        raise MovieGenreError(f"--top must be 0 (all genres) or a positive number, not {top}")
    plot = read_plot(plot, plot_file)
    check_poster(poster)
    if poster is None and plot is None:
        raise MovieGenreError("give --poster, --plot or --plot-file (or --dataset SOURCE --out FILE)")
    from moviegenre.predict.predictor import Predictor, branches_used

    modalities = tuple(m for m, given in (("poster", poster is not None), ("plot", plot is not None)) if given)
    predictor = Predictor(paths, modalities)
    scores, sets = predictor.predict_with_sets([str(poster) if poster else None], [plot])
    used = branches_used(scores, 0)
    in_set = sets[0]
    seen = seen_text(poster is not None, plot is not None)
    if as_json:
        by_branch = {b: scores[b][0] for b in used} if with_branches else None
        answer = movie_json(predictor.genres, seen=seen, branches=used, in_set=in_set, ensemble=scores["ensemble"][0],
                            by_branch=by_branch, top=top)  # fmt: skip
        return json.dumps(answer, indent=2)
    table = pd.DataFrame({
        "genre": predictor.genres, "in_set": np.where(in_set, "*", ""), "ensemble": scores["ensemble"][0]
    })  # fmt: skip
    if with_branches:
        for branch in used:
            table[branch] = scores[branch][0]
    table = table.sort_values("ensemble", ascending=False, kind="stable")
    if top:
        table = table.head(top)
    return f"{seen}: scored by {', '.join(used)}\n{genre_line(table, int(in_set.sum()), top)}\n" + table.rename(
        columns={"in_set": ""}
    ).to_string(index=False, float_format=lambda v: f"{v:.3f}")


def genre_line(shown: pd.DataFrame, set_size: int, top: int) -> str:
    """The genre set as the table shows it (by probability), and how many of it ``--top`` hides."""
    named = shown.loc[shown["in_set"] == "*", "genre"].tolist()
    if not set_size:
        return "genres: (none above its threshold)"
    hidden = set_size - len(named)
    more = f"{', ' if named else ''}{hidden} more below the top {top}" if hidden else ""
    return f"genres: {', '.join(named)}{more}"


# The first characters that make a spreadsheet read a cell as a formula (OWASP, "CSV Injection"):
# a title such as =HYPERLINK(...) from someone else's dataset would run when the CSV is opened.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with a ``'`` before every text cell and header that starts like a formula.

    Spreadsheets show the ``'`` as the start of text and run nothing. Numeric columns are left
    alone: a number is never read as a formula, and a probability written as ``'0.5`` would no
    longer be one.
    """
    safe = frame.copy()
    for column in safe.columns:
        if not pd.api.types.is_numeric_dtype(safe[column]):
            safe[column] = safe[column].map(_defused)
    safe.columns = [_defused(column) for column in safe.columns]
    return safe


def _defused(value: Any) -> Any:
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def score_path(out: Path) -> Path:
    """Where ``predict --dataset`` writes its score against the dataset's own genres: beside ``out``."""
    return out.with_name(f"{out.stem}.score.json")


def predict_dataset(
    paths: ProjectPaths, source: str, out: Path, *, with_branches: bool, bounds: FetchBounds | None = None,
    raw_csv: bool = False, scheduler: str | None = None,
) -> tuple[int, dict[str, Any] | None]:  # fmt: skip
    """Fetch and validate ``source`` as the pipeline does, predict every movie, write a CSV; the
    number of movies, and the score against the genres the dataset carries (None without any).

    Columns: id, title, genres (the genre set, ``|``-separated), then one probability per genre.
    Text that a spreadsheet would run as a formula is escaped unless ``raw_csv``.
    Posters behind URLs are fetched within ``bounds``; SIGTERM removes every temporary.
    The movies are scored in shards (``predict.catalogue``), on the Dask cluster at ``scheduler``
    or the one Dask's config names, else in-process; the same bytes either way.
    """
    bounds = bounds or FetchBounds()
    bounds.check()
    check_out(out, source)
    check_out(score_path(out), source)
    from moviegenre import cluster

    with terminate_cleanly(), cluster.engine(scheduler, "--scheduler") as engine:
        return _predict_dataset(
            paths, source, out, with_branches=with_branches, bounds=bounds, raw_csv=raw_csv, engine=engine
        )


def _predict_dataset(
    paths: ProjectPaths, source: str, out: Path, *, with_branches: bool, bounds: FetchBounds, raw_csv: bool,
    engine: Any = None,
) -> tuple[int, dict[str, Any] | None]:  # fmt: skip
    """The CSV is written a shard at a time, as the shards come back in order, into a temporary
    file renamed over ``out`` at the end: the driver never holds more than a few shards' rows, and
    a run that fails leaves ``out`` as it was. Only what the score needs (each movie's genres,
    ensemble probabilities and set) is kept for the end."""
    from moviegenre.branches.registry import NAMES
    from moviegenre.data.prepare import clean_movies
    from moviegenre.data.table import load_genres
    from moviegenre.download.ingest import build_raw
    from moviegenre.predict.catalogue import score_catalogue
    from moviegenre.predict.predictor import Predictor
    from moviegenre.predict.scoring import dataset_score

    with tempfile.TemporaryDirectory(prefix="moviegenre-predict-") as tmp:
        raw_dir = Path(tmp) / "raw"
        build_raw(bounds.data(source), raw_dir, cache_dir=Path(tmp) / "cache")
        table, report = clean_movies(pd.read_parquet(raw_dir / "movies.parquet"), raw_dir, need_genres=False)
        dropped = sum(report.dropped.values())
        if dropped:
            log.warning("%d movie(s) not predicted: %s", dropped, dict(report.dropped))
        if table.empty:
            raise MovieGenreError(f"{source}: no movie with a plot to predict")
        posters = [p if isinstance(p, str) else None for p in table["poster"]]
        predictor = None if engine is not None else Predictor(paths)
        genres = predictor.genres if predictor is not None else load_genres(paths.prepared)
        named = np.array(genres)
        ensemble: list[np.ndarray] = []
        sets: list[np.ndarray] = []
        shards = score_catalogue(paths, engine, table["id"].tolist(), posters, table["plot"].tolist(),
                                 with_branches=with_branches, predictor=predictor)  # fmt: skip
        with (
            contextlib.closing(shards),  # its progress bar closed, its shards cancelled, before an error line
            atomic_path(out) as tmp_csv,
            tmp_csv.open("w", newline="", encoding="utf-8") as stream,
        ):
            begin = 0
            for scores in shards:
                rows = table.iloc[begin : begin + len(scores.sets)]
                begin += len(rows)
                frame = pd.DataFrame(scores.ensemble, columns=genres)
                frame.insert(0, "genres", ["|".join(named[row]) for row in scores.sets])  # as MM-IMDb writes it
                for branch in (b for b in NAMES if b in scores.branches):
                    branch_frame = pd.DataFrame(scores.branches[branch], columns=[f"{branch}:{g}" for g in genres])
                    frame = pd.concat([frame, branch_frame], axis=1)
                frame.insert(0, "title", rows["title"].to_numpy())
                frame.insert(0, "id", rows["id"].to_numpy())
                (frame if raw_csv else spreadsheet_safe(frame)).to_csv(
                    stream, index=False, header=not ensemble, float_format="%.8f"
                )
                ensemble.append(scores.ensemble)
                sets.append(scores.sets)
    proba = np.concatenate(ensemble)
    score = dataset_score(table["genres"].tolist(), genres, proba, np.concatenate(sets))
    if score is not None:
        write_json(score_path(out), score)
    log.info("predicted %d movies (%d with a poster)", len(table), int(np.sum([p is not None for p in posters])))
    return len(table), score
