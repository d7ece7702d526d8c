"""The download stage's library: both layouts become the same raw table; poster URLs are cached safely."""

from __future__ import annotations

import csv
import gzip
import hashlib
import os
import socket
import zipfile
from collections.abc import Callable
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helpers.builders import LIMITS, data_settings
from helpers.synthetic import make_movies, poster_bytes, write_mmimdb_dir

from moviegenre.core.errors import MovieGenreError
from moviegenre.download.archives import Limits
from moviegenre.download.directories import copy_directory
from moviegenre.download.ingest import build_raw
from moviegenre.download.layouts import parse_genre_field
from moviegenre.download.settings import DataSettings


def _params(source: Path | str, sha256: str | None = None, **changes: Any) -> DataSettings:
    return data_settings(source, **({"sha256": sha256, "poster_workers": 4, "retries": 1} | changes))


def test_mmimdb_archive_to_raw_table(tmp_path: Path, mmimdb_archive: Path) -> None:
    digest = hashlib.sha256(mmimdb_archive.read_bytes()).hexdigest()
    summary = build_raw(_params(mmimdb_archive, digest), tmp_path / "raw", tmp_path / "cache")
    assert (summary.layout, summary.movies, summary.posters) == ("mmimdb", 60, 60)
    table = pd.read_parquet(tmp_path / "raw" / "movies.parquet")
    assert list(table.columns) == ["id", "title", "year", "plot", "genres", "poster", "problem"]
    first = table.iloc[0]
    assert first["id"] == "1000000" and first["plot"] and list(first["genres"])
    assert (tmp_path / "raw" / first["poster"]).is_file()


def test_mmimdb_longest_plot_wins_and_malformed_json_is_kept_as_problem(tmp_path: Path) -> None:
    dataset = write_mmimdb_dir(tmp_path / "src", make_movies(3), poster_every=0)
    (dataset / "1000000.json").write_text(
        '{"title": "t", "year": 2000, "genres": ["Drama"], "plot": ["short", "a much longer plot"]}'
    )
    (dataset / "1000001.json").write_text("{not json")
    build_raw(_params(tmp_path / "src"), tmp_path / "raw", tmp_path / "cache")
    table = pd.read_parquet(tmp_path / "raw" / "movies.parquet").set_index("id")
    assert table.loc["1000000", "plot"] == "a much longer plot"
    assert table.loc["1000001", "problem"] == "malformed_record"
    assert table["poster"].isna().all()


def test_csv_layout_with_archive_paths_and_url_posters(
    http_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    movies = make_movies(6)
    served: list[str] = []

    def handle(h: BaseHTTPRequestHandler) -> None:
        served.append(h.path)
        if h.path.endswith("gone.jpg"):
            h.send_response(404)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        body = poster_bytes(["Drama"], 1)
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    base = http_server(handle)
    zip_path = tmp_path / "movies.zip"
    rows = []
    for i, m in enumerate(movies):
        poster = {0: "img/0.jpg", 1: f"{base}/p/1.jpg", 2: f"{base}/p/gone.jpg", 3: "img/missing.jpg"}.get(i, "")
        rows.append(
            {
                "id": m["id"],
                "title": m["title"],
                "year": m["year"],
                "plot": m["plot"],
                "genres": "|".join(m["genres"]),
                "poster": poster,
            }
        )
    csv_path = tmp_path / "movies.csv"
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.write(csv_path, "movies.csv")
        zf.writestr("img/0.jpg", poster_bytes(["Comedy"], 0))

    monkeypatch.chdir(tmp_path)  # relative output paths, as the download stage passes them
    summary = build_raw(_params(zip_path), Path("raw"), Path("cache"))
    assert (summary.layout, summary.movies, summary.posters, summary.poster_failures) == ("csv", 6, 2, 2)
    table = pd.read_parquet(tmp_path / "raw" / "movies.parquet").set_index("id")
    assert table.loc[movies[0]["id"], "poster"] == "files/img/0.jpg"
    assert table.loc[movies[1]["id"], "poster"].startswith("posters/")
    assert list(table.loc[movies[0]["id"], "genres"]) == movies[0]["genres"]
    failures = pd.read_csv(tmp_path / "raw" / "poster_failures.csv")
    assert set(failures["id"].astype(str).str.zfill(7)) == {movies[2]["id"], movies[3]["id"]}
    assert failures["reason"].str.contains("404|not found").all()

    # A second run finds the fetched poster in the cache and does not ask again.
    served.clear()
    build_raw(_params(zip_path), Path("raw"), Path("cache"))
    assert served == ["/p/gone.jpg"] * len(served) and served


def test_csv_missing_columns_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "movies.csv").write_text("id,title\n1,x\n")
    with pytest.raises(MovieGenreError, match="missing column"):
        build_raw(_params(tmp_path / "src"), tmp_path / "raw", tmp_path / "cache")
    assert not (tmp_path / "raw").exists()


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("Drama|Comedy", ["Drama", "Comedy"]),
        ("Drama, Comedy", ["Drama", "Comedy"]),
        ("['Drama', 'Sci-Fi']", ["Drama", "Sci-Fi"]),
        ('["Drama", "Children\'s", \'Film-Noir\',]', ["Drama", "Children's", "Film-Noir"]),
        ("['Children\\'s']", ["Children's"]),
        ("[Drama, Comedy]", ["Drama", "Comedy"]),
        ("[Drama|Comedy]", ["Drama", "Comedy"]),
        ("[]", []),
        ("", []),
    ],
)
def test_a_genres_cell_is_read_in_every_documented_form(cell: str, expected: list[str]) -> None:
    assert parse_genre_field(cell) == expected


@pytest.mark.parametrize(
    "cell",
    ["[" + "-" * 100_000 + "1]", "[" + "+1" * 200_000 + "]", "[" + "+" * 200_000 + "1]", "[" * 20_000 + "]" * 20_000],
    ids=["dashes", "plus-ones", "pluses", "nested"],
)
def test_a_hostile_genres_cell_is_refused_naming_the_file_and_row(tmp_path: Path, cell: str) -> None:
    (tmp_path / "src").mkdir()
    rows = [{"id": "m1", "title": "T", "year": "2000", "plot": "a plot", "genres": "Drama", "poster": ""},
            {"id": "m2", "title": "T", "year": "2000", "plot": "a plot", "genres": cell, "poster": ""}]  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "src" / "movies.csv", index=False)
    with pytest.raises(MovieGenreError) as caught:
        build_raw(_params(tmp_path / "src"), tmp_path / "raw", tmp_path / "cache")
    assert str(caught.value) == (
        f"{tmp_path / 'src'}/movies.csv: row 2 (id 'm2'): genres cell of {len(cell):,} characters: "
        "longer than any list of genres (10,000)"
    )
    assert not (tmp_path / "raw").exists()


def test_a_json_record_too_deep_or_not_utf8_is_kept_as_a_malformed_record(tmp_path: Path) -> None:
    dataset = write_mmimdb_dir(tmp_path / "src", make_movies(3), poster_every=0)
    (dataset / "1000001.json").write_text("[" * 200_000 + "]" * 200_000)
    (dataset / "1000002.json").write_text('{"title": "t", "genres": ["Drama"], "plot": ["a plot \\ud800"]}')
    build_raw(_params(tmp_path / "src"), tmp_path / "raw", tmp_path / "cache")
    table = pd.read_parquet(tmp_path / "raw" / "movies.parquet").set_index("id")
    assert table["problem"].fillna("").to_dict() == {
        "1000000": "", "1000001": "malformed_record", "1000002": "malformed_record"
    }  # fmt: skip


def test_no_dataset_in_source_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "readme.txt").write_text("nothing here")
    with pytest.raises(MovieGenreError, match="no dataset found"):
        build_raw(_params(tmp_path / "src"), tmp_path / "raw", tmp_path / "cache")


# --- Directory sources: regular files only, within the archive limits ------------------------------


def _unix_socket(path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))


HOSTILE_ENTRIES: list[tuple[str, Callable[[Path], None], str]] = [
    ("1.jpeg", lambda p: p.symlink_to("/dev/zero"), "link to '/dev/zero' points outside the source"),
    ("1.jpeg", lambda p: p.symlink_to(p.parents[3] / "outside.jpeg"), "points outside the source"),
    ("up", lambda p: p.symlink_to(".."), "link to '..' makes a loop"),
    ("self", lambda p: p.symlink_to("self"), "link to 'self' makes a loop"),
    ("gone.jpeg", lambda p: p.symlink_to("nothing.jpeg"), "link to 'nothing.jpeg' points at nothing"),
    ("2.jpeg", lambda p: os.mkfifo(p), "a fifo, not a regular file"),
    ("3.jpeg", _unix_socket, "a socket, not a regular file"),
]


@pytest.mark.parametrize(("name", "make", "reason"), HOSTILE_ENTRIES, ids=[r for _, _, r in HOSTILE_ENTRIES])
def test_a_directory_source_with_something_but_files_and_folders_is_refused_by_member(
    tmp_path: Path, name: str, make: Callable[[Path], None], reason: str
) -> None:
    dataset = write_mmimdb_dir(tmp_path / "src", make_movies(2), poster_every=0)
    (tmp_path / "outside.jpeg").write_bytes(b"secret")
    make(dataset / name)
    with pytest.raises(MovieGenreError) as caught:
        build_raw(_params(tmp_path / "src"), tmp_path / "raw", tmp_path / "cache")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'src'}: refusing member 'mmimdb/dataset/{name}': ") and reason in message
    assert "\n" not in message
    assert not (tmp_path / "raw").exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_links_inside_a_directory_source_are_copied_as_what_they_point_at(tmp_path: Path) -> None:
    dataset = write_mmimdb_dir(tmp_path / "src", make_movies(2), poster_every=1)
    first, second = sorted(dataset.glob("*.jpeg"))
    second.unlink()
    second.symlink_to(first.name)  # two movies, one poster file
    (tmp_path / "src" / "alias").symlink_to("mmimdb", target_is_directory=True)
    summary = build_raw(_params(tmp_path / "src"), tmp_path / "raw", tmp_path / "cache")
    assert (summary.movies, summary.posters) == (2, 2)
    files = tmp_path / "raw" / "files"
    copied = files / "mmimdb" / "dataset" / second.name
    assert not copied.is_symlink() and copied.read_bytes() == first.read_bytes()
    assert (files / "alias" / "dataset" / first.name).read_bytes() == first.read_bytes()


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        (replace(LIMITS, max_members=4), "more than data.max_members=4 members"),
        (replace(LIMITS, max_extract_gb=0.001), "is over data.max_extract_gb=0.001"),
    ],
)
def test_a_directory_source_over_a_limit_is_refused_by_member(tmp_path: Path, limits: Limits, reason: str) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for i in range(5):
        (source / f"{i}.bin").write_bytes(bytes(400_000))
    with pytest.raises(MovieGenreError, match=rf"^{source}: refusing member '\d\.bin': .*{reason}"):
        copy_directory(source, tmp_path / "copy", limits=limits, name=str(source), progress=False)


def test_a_file_that_grows_past_its_size_while_copied_is_stopped_at_max_extract_gb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    growing = source / "growing.bin"
    growing.write_bytes(bytes(3_000_000))
    real_stat = os.stat

    def stat_when_listed(path, *args, **kwargs):  # the size the file had when it was looked at
        info = real_stat(path, *args, **kwargs)
        return os.stat_result((*info[:6], 0, *info[7:10])) if Path(path) == growing else info

    monkeypatch.setattr(os, "stat", stat_when_listed)
    with pytest.raises(
        MovieGenreError, match=r"'growing\.bin': unpacked size 1,048,576 bytes is over data\.max_extract_gb=0\.001"
    ):
        copy_directory(source, tmp_path / "copy", limits=replace(LIMITS, max_extract_gb=0.001), progress=False)


def test_a_name_that_is_not_utf8_in_a_directory_source_is_refused(tmp_path: Path) -> None:
    dataset = write_mmimdb_dir(tmp_path / "src", make_movies(2), poster_every=0)
    first = sorted(dataset.glob("*.json"))[0]
    os.rename(first, os.path.join(os.fsencode(dataset), b"caf\xe9.json"))
    with pytest.raises(MovieGenreError) as caught:
        build_raw(_params(tmp_path / "src"), tmp_path / "raw", tmp_path / "cache")
    assert str(caught.value) == f"{tmp_path / 'src'}: refusing member 'mmimdb/dataset/caf\\xe9.json': name is not UTF-8"
    assert not (tmp_path / "raw").exists()


# --- Poster URLs: cached by URL, only real images, failures recorded with their own reason --------


def _csv_source(tmp_path: Path, posters: dict[str, str]) -> Path:
    """A directory source whose movies.csv gives each id in ``posters`` that poster cell."""
    movies = make_movies(len(posters))
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    with (src / "movies.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "title", "year", "plot", "genres", "poster"])
        writer.writeheader()
        for movie, (movie_id, poster) in zip(movies, posters.items(), strict=True):
            writer.writerow(
                {
                    "id": movie_id,
                    "title": movie["title"],
                    "year": movie["year"],
                    "plot": movie["plot"],
                    "genres": "|".join(movie["genres"]),
                    "poster": poster,
                }
            )
    return src


def _poster_server(http_server, bodies: dict[str, tuple[bytes, str | None]], served: list[str]) -> str:
    def handle(h: BaseHTTPRequestHandler) -> None:
        served.append(h.path)
        body, content_type = bodies[h.path]
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        if content_type:
            h.send_header("Content-Type", content_type)
        h.end_headers()
        h.wfile.write(body)

    return http_server(handle)


def _posters(raw: Path) -> dict[str, bytes | None]:
    table = pd.read_parquet(raw / "movies.parquet")
    return {i: (raw / p).read_bytes() if p else None for i, p in zip(table["id"], table["poster"], strict=True)}


def test_poster_cache_is_keyed_by_url_not_by_movie_id(http_server, tmp_path: Path) -> None:
    one, two, three = (poster_bytes(["Drama"], s) for s in (1, 2, 3))
    served: list[str] = []
    base = _poster_server(
        http_server,
        {"/1.jpg": (one, "image/jpeg"), "/2.jpg": (two, "image/jpeg"), "/3.jpg": (three, None)},
        served,
    )
    src = _csv_source(tmp_path, {"coll/1": f"{base}/1.jpg", "coll_1": f"{base}/2.jpg"})
    build_raw(_params(src), tmp_path / "raw", tmp_path / "cache")
    assert _posters(tmp_path / "raw") == {"coll/1": one, "coll_1": two}  # two ids that sanitise alike

    served.clear()
    _csv_source(tmp_path, {"coll/1": f"{base}/3.jpg", "coll_1": f"{base}/2.jpg"})  # coll/1's URL changed
    build_raw(_params(src), tmp_path / "raw", tmp_path / "cache")
    assert _posters(tmp_path / "raw") == {"coll/1": three, "coll_1": two}
    assert served == ["/3.jpg"]  # the unchanged URL came from the cache


def test_a_gzip_encoded_poster_is_kept_decoded_and_a_gzip_bomb_refused(http_server, tmp_path: Path) -> None:
    poster = poster_bytes(["Drama"], 1)
    bodies = {"/p.jpg": poster, "/bomb.jpg": bytes(3_000_000)}

    def handle(h: BaseHTTPRequestHandler) -> None:
        packed = gzip.compress(bodies[h.path])
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.send_header("Content-Encoding", "gzip")
        h.send_header("Content-Length", str(len(packed)))  # the compressed size, as HTTP says
        h.end_headers()
        h.wfile.write(packed)

    base = http_server(handle)
    src = _csv_source(tmp_path, {"a": f"{base}/p.jpg", "b": f"{base}/bomb.jpg"})
    summary = build_raw(_params(src, max_poster_mb=1), tmp_path / "raw", tmp_path / "cache")
    assert (summary.posters, summary.poster_failures) == (1, 1)
    table = pd.read_parquet(tmp_path / "raw" / "movies.parquet").set_index("id")
    assert (tmp_path / "raw" / table.loc["a", "poster"]).read_bytes() == poster and pd.isna(table.loc["b", "poster"])
    failures = pd.read_csv(tmp_path / "raw" / "poster_failures.csv")
    assert failures["reason"].tolist() == ["larger than 1 MB"]


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"<html>poster not found</html>", "text/html; charset=utf-8", "not an image (Content-Type text/html)"),
        (b"<html>poster not found</html>", None, "not an image (cannot be decoded)"),
        (b"\xff\xd8 not really a jpeg", "image/jpeg", "not an image (cannot be decoded)"),
    ],
)
def test_a_response_that_is_not_an_image_is_a_failure_never_cached(
    http_server, tmp_path: Path, body: bytes, content_type: str | None, reason: str
) -> None:
    served: list[str] = []
    base = _poster_server(http_server, {"/p.jpg": (body, content_type)}, served)
    src = _csv_source(tmp_path, {"a": f"{base}/p.jpg"})
    for _ in range(2):
        summary = build_raw(_params(src), tmp_path / "raw", tmp_path / "cache")
        assert (summary.posters, summary.poster_failures) == (0, 1)
    failures = pd.read_csv(tmp_path / "raw" / "poster_failures.csv")
    assert failures["reason"].tolist() == [reason]
    assert len(served) == 2  # asked again: the page was not kept as a poster
    assert not [p for p in (tmp_path / "cache" / "posters").iterdir() if p.suffix == ".jpg"]


def test_poster_failure_reasons_do_not_point_at_data_source(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    src = _csv_source(tmp_path, {"a": f"http://127.0.0.1:{port}/p.jpg", "b": "http://", "c": "http://[::1/p.jpg"})
    params = _params(src, retries=0)
    build_raw(params, tmp_path / "raw", tmp_path / "cache")
    failures = pd.read_csv(tmp_path / "raw" / "poster_failures.csv").set_index("id")["reason"]
    assert "Connection refused" in failures["a"]
    assert "No host supplied" in failures["b"] and failures["c"] == "not a valid URL or path"
    assert not failures.str.contains("data.source|\n").any()
