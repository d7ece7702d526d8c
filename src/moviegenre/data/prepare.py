"""The prepare stage's work: validate raw movies, normalise genres, split, write the table.

Every movie that does not make it into the table is counted under a reason, so
``metrics/data.json`` adds up: movies in = movies out + drops. The ids behind the counts go
to ``dropped.csv`` beside the table (id, reason), poster drops as ``poster:<reason>`` (the
movie stays, without its poster), so a drop can be traced to its movie.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field, model_validator
from tqdm import tqdm

from moviegenre.config.settings import Number, Settings
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.files import atomic_dir, json_text, write_json
from moviegenre.data import genres as genre_names
from moviegenre.data.posters import POSTER_PROBLEMS, poster_problem
from moviegenre.data.splitting import SPLITS, check_fractions, stratified_split
from moviegenre.data.table import GENRES_NAME, TABLE_NAME, label_matrix

log = logging.getLogger(__name__)


class SplitSettings(Settings):  # prepare.split: fractions of the movies with both poster and plot
    train: Number = Field(gt=0)
    val: Number = Field(gt=0)
    test: Number = Field(gt=0)

    @model_validator(mode="after")
    def _adds_up(self) -> SplitSettings:
        total = self.train + self.val + self.test
        if not math.isclose(total, 1.0, abs_tol=1e-9):
            raise ValueError(f"must add up to 1, not {total:g}")
        return self


class PrepareSettings(Settings):
    split: SplitSettings
    min_genre_count: int = Field(ge=1)


DROP_REASONS = ("malformed_record", "empty_plot", "no_genres", "duplicate_id")
DROPPED_NAME = "dropped.csv"


@dataclass
class Report:
    """Counts for metrics/data.json: what came in, what was dropped and why, what went out."""

    movies_in: int = 0
    posters_in: int = 0
    dropped: Counter = field(default_factory=Counter)
    posters_dropped: Counter = field(default_factory=Counter)
    unknown_genres: Counter = field(default_factory=Counter)
    sampled_out: int = 0
    drops: list[tuple[str, str]] = field(default_factory=list)  # (id, reason), movie and poster drops

    def drop(self, movie_id: object, reason: str) -> None:
        self.drops.append((str(movie_id), reason))

    def drops_table(self) -> pd.DataFrame:
        return pd.DataFrame(self.drops, columns=["id", "reason"])

    def as_metrics(self, table: pd.DataFrame, kept: list[str], dropped_genres: dict) -> dict:
        has_poster = table["poster"].notna()
        return {
            "movies_in": self.movies_in,
            "posters_in": self.posters_in,
            "dropped": {reason: self.dropped[reason] for reason in DROP_REASONS},
            "posters_dropped": {r: self.posters_dropped[r] for r in POSTER_PROBLEMS},
            "unknown_genre_labels": sum(self.unknown_genres.values()),
            "sampled_out_by_limit": self.sampled_out,
            "movies_out": len(table),
            "with_poster": int(has_poster.sum()),
            "plot_only": int((~has_poster).sum()),
            "split": {
                "train": int(((table["split"] == "train") & has_poster).sum()),
                "val": int((table["split"] == "val").sum()),
                "test": int((table["split"] == "test").sum()),
                "train_plot_only": int(((table["split"] == "train") & ~has_poster).sum()),
            },
            "genres": {"kept": len(kept), "dropped": len(dropped_genres)},
        }


def prepare(
    raw_dir: Path,
    out_dir: Path,
    metrics_path: Path,
    *,
    fractions: dict[str, float],
    min_genre_count: int,
    seed: int,
    limit: int | None = None,
    workers: int | None = None,
) -> dict:
    """Validate, split and write the prepared table, genre vocabulary, dropped ids and data metrics.

    Settings are checked first: a bad split must not cost the poster check's time.
    """
    check_fractions(fractions)
    table_path = raw_dir / "movies.parquet"
    if not table_path.is_file():
        raise MovieGenreError(f"{table_path}: raw table not found (run `dvc repro download`)")
    table, report = clean_movies(pd.read_parquet(table_path), raw_dir, workers)
    if limit is not None:
        table = _sample(table, limit, seed, report)

    vocabulary = sorted({g for gs in table["genres"] for g in gs})
    has_poster = table["poster"].notna().to_numpy()
    complete_labels = label_matrix(table.loc[has_poster, "genres"], vocabulary)
    split = np.full(len(table), "train", dtype=object)
    split[has_poster] = stratified_split(complete_labels, fractions, seed)
    table["split"] = split

    kept, dropped_genres = _genre_vocabulary(complete_labels, split[has_poster], vocabulary, min_genre_count)
    if not kept:
        raise MovieGenreError(
            f"no genre has {min_genre_count} positives in every split (lower prepare.min_genre_count)"
        )
    for name, counts in dropped_genres.items():
        log.warning(
            "genre %s dropped: positives per split %s < prepare.min_genre_count=%d",
            name,
            counts,
            min_genre_count,
        )

    metrics = report.as_metrics(table, kept, dropped_genres)
    with atomic_dir(out_dir) as tmp:
        table.to_parquet(tmp / TABLE_NAME, index=False)
        report.drops_table().to_csv(tmp / DROPPED_NAME, index=False)
        (tmp / GENRES_NAME).write_text(
            json_text(
                {
                    "genres": kept,
                    "dropped": dropped_genres,
                    "min_genre_count": min_genre_count,
                    "unknown_labels": dict(sorted(report.unknown_genres.items())),
                }
            )
        )
        write_json(metrics_path, metrics)
    return metrics


def clean_movies(
    raw: pd.DataFrame, raw_dir: Path, workers: int | None = None, *, need_genres: bool = True
) -> tuple[pd.DataFrame, Report]:
    """Validate a raw table (prepare and predict share this): drops counted, bad posters nulled.

    Poster paths in the result are ``raw_dir / poster`` (usable from the working directory).
    ``need_genres``: a movie without a known genre is dropped (training needs labels; a new
    movie to predict does not).
    """
    report = Report(movies_in=len(raw), posters_in=int(raw["poster"].notna().sum()))
    table = _drop_invalid(raw, report, need_genres)
    return _check_posters(table, raw_dir, report, workers), report


def _drop_invalid(raw: pd.DataFrame, report: Report, need_genres: bool) -> pd.DataFrame:
    table = raw.copy()
    table["plot"] = table["plot"].fillna("").astype(str).str.strip()
    normalised = []
    for movie_genres in table["genres"]:
        known = []
        for name in movie_genres if movie_genres is not None else []:
            canonical = genre_names.normalise(str(name))
            if canonical is None:
                report.unknown_genres[str(name).strip()] += 1
            elif canonical not in known:
                known.append(canonical)
        normalised.append(known)
    table["genres"] = normalised
    for name, count in report.unknown_genres.items():
        log.warning("unknown genre %r removed from %d movie(s)", name, count)

    reasons = pd.Series(None, index=table.index, dtype=object)
    reasons[table["problem"].notna()] = table["problem"]
    reasons[reasons.isna() & (table["plot"] == "")] = "empty_plot"
    if need_genres:
        reasons[reasons.isna() & (table["genres"].map(len) == 0)] = "no_genres"
    duplicate = table["id"].duplicated(keep="first")
    reasons[reasons.isna() & duplicate] = "duplicate_id"
    for reason, count in reasons.value_counts().items():
        report.dropped[reason] += int(count)
        log.warning("dropped %d movie(s): %s", count, reason)
    for movie_id, reason in zip(table.loc[reasons.notna(), "id"], reasons[reasons.notna()], strict=True):
        report.drop(movie_id, reason)
    return table[reasons.isna()].drop(columns=["problem"]).reset_index(drop=True)


def _check_posters(table: pd.DataFrame, raw_dir: Path, report: Report, workers: int | None) -> pd.DataFrame:
    """Decode every poster once (draft mode); unreadable ones become 'no poster'."""
    rows = table.index[table["poster"].notna()]
    paths = [str(raw_dir / p) for p in table.loc[rows, "poster"]]
    workers = workers or os.cpu_count() or 1
    with ProcessPoolExecutor(max_workers=workers) as pool:
        problems = list(
            tqdm(
                pool.map(poster_problem, paths, chunksize=64),
                total=len(paths),
                desc="check posters",
                unit=" posters",
            )
        )
    table = table.copy()
    table["poster"] = table["poster"].astype(object)
    for row, path, problem in zip(rows, paths, problems, strict=True):
        if problem is None:
            table.at[row, "poster"] = path
        else:
            report.posters_dropped[problem] += 1
            report.drop(table.at[row, "id"], f"poster:{problem}")
            table.at[row, "poster"] = None
            log.warning("%s: poster unusable (%s); the movie keeps its plot", path, problem)
    return table


def _sample(table: pd.DataFrame, limit: int, seed: int, report: Report) -> pd.DataFrame:
    """``limit`` complete movies, and plot-only movies in the same proportion."""
    has_poster = table["poster"].notna()
    complete, plot_only = table[has_poster], table[~has_poster]
    if limit >= len(complete):
        return table
    rng = np.random.default_rng(seed)
    share = limit / len(complete)
    keep = np.concatenate(
        [
            rng.choice(complete.index.to_numpy(), size=limit, replace=False),
            rng.choice(plot_only.index.to_numpy(), size=round(share * len(plot_only)), replace=False),
        ]
    )
    sampled = table.loc[np.sort(keep)].reset_index(drop=True)
    report.sampled_out = len(table) - len(sampled)
    return sampled


def _genre_vocabulary(
    labels: np.ndarray, split: np.ndarray, vocabulary: list[str], min_count: int
) -> tuple[list[str], dict[str, dict[str, int]]]:
    kept, dropped = [], {}
    for column, name in enumerate(vocabulary):
        counts = {s: int(labels[split == s, column].sum()) for s in SPLITS}
        if min(counts.values()) >= min_count:
            kept.append(name)
        else:
            dropped[name] = counts
    return kept, dropped
