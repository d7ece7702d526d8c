"""prepare: drops recorded with reasons (counts and ids), genres normalised, split disjoint, stratified, seeded."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.builders import data_settings
from helpers.synthetic import make_movies, write_mmimdb_dir

from moviegenre.core.errors import MovieGenreError
from moviegenre.data import prepare as prepare_module
from moviegenre.data.posters import poster_problem
from moviegenre.data.prepare import prepare
from moviegenre.data.table import label_matrix, load_prepared
from moviegenre.download.ingest import build_raw

SPLIT = {"train": 0.6, "val": 0.2, "test": 0.2}


def _huge_png(width: int = 11000, height: int = 11000) -> bytes:
    """A small file whose header announces width x height pixels (PIL refuses it on open)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _raw_from(tmp_path: Path, movies: list[dict], edit=None) -> Path:
    dataset = write_mmimdb_dir(tmp_path / "src", movies, poster_every=2)
    if edit:
        edit(dataset)
    build_raw(data_settings(tmp_path / "src"), tmp_path / "raw", tmp_path / "cache")
    return tmp_path / "raw"


def _prepare(tmp_path: Path, raw: Path, seed: int = 7, limit: int | None = None, out: str = "prepared") -> dict:
    return prepare(
        raw,
        tmp_path / out,
        tmp_path / out / "../data.json",
        fractions=SPLIT,
        min_genre_count=2,
        seed=seed,
        limit=limit,
        workers=1,
    )


def test_bad_records_and_posters_are_counted_by_reason(tmp_path: Path) -> None:
    movies = make_movies(120)
    movies[1]["plot"] = "   "
    movies[3]["genres"] = []
    movies[5]["genres"] = ["sci fi", "Bogus"]  # normalised + unknown label

    def damage(dataset: Path) -> None:
        (dataset / f"{movies[0]['id']}.jpeg").write_bytes(b"")
        (dataset / f"{movies[2]['id']}.jpeg").write_bytes(b"this is not an image")
        poster = dataset / f"{movies[4]['id']}.jpeg"
        poster.write_bytes(poster.read_bytes()[: poster.stat().st_size // 2])
        (dataset / f"{movies[6]['id']}.jpeg").write_bytes(_huge_png())

    raw = _raw_from(tmp_path, movies, damage)
    # json ids come from file names, so write a real duplicate by copying a record
    table = pd.read_parquet(raw / "movies.parquet")
    table = pd.concat([table, table.iloc[[10]]], ignore_index=True)
    table.to_parquet(raw / "movies.parquet", index=False)

    metrics = _prepare(tmp_path, raw)
    assert metrics["movies_in"] == 121
    assert metrics["dropped"] == {"malformed_record": 0, "empty_plot": 1, "no_genres": 1, "duplicate_id": 1}
    assert metrics["posters_dropped"] == {
        "missing": 0,
        "zero_bytes": 1,
        "not_an_image": 1,
        "truncated": 1,
        "too_large": 1,
    }
    assert metrics["unknown_genre_labels"] == 1
    assert metrics["movies_out"] == 121 - 3
    assert metrics["with_poster"] == 60 - 4
    written = json.loads((tmp_path / "data.json").read_text())
    assert written == metrics

    prepared, vocabulary = load_prepared(tmp_path / "prepared")
    by_id = prepared.set_index("id")
    assert pd.isna(by_id.loc[movies[0]["id"], "poster"])  # keeps its plot, loses its poster
    assert "Sci-Fi" in by_id.loc[movies[5]["id"], "genres"] and "Bogus" not in by_id.loc[movies[5]["id"], "genres"]
    assert vocabulary == sorted(vocabulary)

    dropped = pd.read_csv(tmp_path / "prepared" / "dropped.csv", dtype=str)
    assert list(dropped.columns) == ["id", "reason"]
    assert sorted(zip(dropped["id"], dropped["reason"], strict=True)) == sorted(
        [
            (movies[1]["id"], "empty_plot"),
            (movies[3]["id"], "no_genres"),
            (movies[10]["id"], "duplicate_id"),
            (movies[0]["id"], "poster:zero_bytes"),
            (movies[2]["id"], "poster:not_an_image"),
            (movies[4]["id"], "poster:truncated"),
            (movies[6]["id"], "poster:too_large"),
        ]
    )
    # every counted drop has its id, and every poster drop names a movie that is still there
    assert len(dropped) == sum(metrics["dropped"].values()) + sum(metrics["posters_dropped"].values())
    poster_drops = dropped[dropped["reason"].str.startswith("poster:")]
    assert poster_drops["id"].isin(prepared["id"]).all()


def test_an_oversized_poster_is_too_large_not_truncated(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    path.write_bytes(_huge_png())
    assert poster_problem(path) == "too_large"
    path.write_bytes(_huge_png(8000, 8000))  # over MAX_IMAGE_PIXELS, under twice it (a warning in PIL)
    assert poster_problem(path) == "too_large"


def test_split_is_disjoint_stratified_seeded_and_plot_only_trains(tmp_path: Path) -> None:
    raw = _raw_from(tmp_path, make_movies(200))
    _prepare(tmp_path, raw, seed=3, out="a")
    _prepare(tmp_path, raw, seed=3, out="b")
    _prepare(tmp_path, raw, seed=4, out="c")
    a, vocabulary = load_prepared(tmp_path / "a")
    b, _ = load_prepared(tmp_path / "b")
    c, _ = load_prepared(tmp_path / "c")

    assert a["id"].is_unique
    assert (a["split"] == b["split"]).all()  # same seed, same split
    assert (a["split"] != c["split"]).any()  # another seed, another split
    assert set(a.loc[a["poster"].isna(), "split"]) == {"train"}  # plot-only never in val/test

    complete = a[a["poster"].notna()]
    counts = complete["split"].value_counts()
    assert counts["test"] == pytest.approx(0.2 * len(complete), abs=2)
    assert counts["val"] == pytest.approx(0.2 * len(complete), abs=2)
    labels = label_matrix(complete["genres"], vocabulary)
    overall = labels.mean(axis=0)
    for split in ("train", "val", "test"):
        share = labels[(complete["split"] == split).to_numpy()].mean(axis=0)
        assert np.abs(share - overall).max() < 0.06, split


def test_limit_takes_a_seeded_sample_of_complete_movies(tmp_path: Path) -> None:
    raw = _raw_from(tmp_path, make_movies(200))
    metrics = _prepare(tmp_path, raw, limit=40)
    assert metrics["with_poster"] == 40
    assert metrics["plot_only"] == 40  # same proportion as in the source (1:1)
    assert metrics["sampled_out_by_limit"] == 120


def test_rare_genre_is_dropped_and_listed(tmp_path: Path) -> None:
    movies = make_movies(100)
    movies[0]["genres"].append("Western")  # one positive: cannot be in every split
    raw = _raw_from(tmp_path, movies)
    metrics = _prepare(tmp_path, raw)
    genres = json.loads((tmp_path / "prepared" / "genres.json").read_text())
    assert "Western" in genres["dropped"] and "Western" not in genres["genres"]
    assert metrics["genres"] == {"kept": 5, "dropped": 1}


def test_bad_split_fractions_are_rejected_before_the_poster_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = _raw_from(tmp_path, make_movies(40))

    def slow_check(*args: object) -> None:
        raise AssertionError("the ~20 s poster check ran before the settings were checked")

    monkeypatch.setattr(prepare_module, "_check_posters", slow_check)
    with pytest.raises(MovieGenreError, match=r"prepare\.split"):
        prepare(
            raw,
            tmp_path / "p",
            tmp_path / "d.json",
            fractions={"train": 0.5, "val": 0.1, "test": 0.1},
            min_genre_count=1,
            seed=0,
            workers=1,
        )
    assert not (tmp_path / "p").exists()


def test_missing_raw_table_says_which_stage_to_run(tmp_path: Path) -> None:
    with pytest.raises(MovieGenreError, match="dvc repro download"):
        prepare(tmp_path, tmp_path / "p", tmp_path / "d.json", fractions=SPLIT, min_genre_count=1, seed=0)
