"""benchmarks/scale.py's synthetic dataset: k times the movies, a valid MM-IMDb source, reproducible."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import PROJECT_ROOT
from PIL import Image

sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))

import scale

from moviegenre.download.layouts import find_layout, read_mmimdb

SENTENCE = re.compile(r"(?<=[.!?])\s+")


@pytest.fixture
def base(tmp_path: Path) -> list[dict]:
    from helpers.synthetic import make_mmimdb_archive

    archive = make_mmimdb_archive(tmp_path / "base.tar.gz", n=20, poster_every=2, seed=4)
    return scale.read_base(archive, limit=12, seed=0)


def test_read_base_samples_limit_movies_with_their_posters(base: list[dict]) -> None:
    assert len(base) == 12
    assert len({m["id"] for m in base}) == 12
    assert any(m["poster"] is None for m in base) and any(m["poster"] for m in base)  # every other has a poster
    assert all(m["plot"] and m["genres"] for m in base)


def test_k_copies_keep_genres_and_draw_plots_from_the_same_genre_set(base: list[dict], tmp_path: Path) -> None:
    movies = scale.synthetic_movies(base, 3, seed=1)
    dataset = scale.write_dataset(movies, tmp_path / "k3", workers=1)
    layout, found = find_layout(tmp_path / "k3")
    assert (layout, found) == ("mmimdb", dataset)
    table = read_mmimdb(dataset).set_index("id")
    assert len(table) == 36 and table.index.is_unique and table["problem"].isna().all()
    pools: dict[tuple[str, ...], set[str]] = {}
    for movie in base:
        pools.setdefault(tuple(sorted(movie["genres"])), set()).update(SENTENCE.split(movie["plot"].strip()))
    for movie in base:
        original = table.loc[movie["id"]]
        assert original["plot"] == movie["plot"]
        for copy in (1, 2):
            variant = table.loc[f"{movie['id']}_{copy}"]
            assert variant["genres"] == movie["genres"]
            assert set(SENTENCE.split(variant["plot"])) <= pools[tuple(sorted(movie["genres"]))]
            has_poster = isinstance(original["poster"], str)
            assert isinstance(variant["poster"], str) == has_poster
            if has_poster:
                with Image.open(original["poster"]) as a, Image.open(variant["poster"]) as b:
                    assert a.size == b.size  # cropped, then resized back
                    pixels_a, pixels_b = np.asarray(a.convert("RGB"), float), np.asarray(b.convert("RGB"), float)
                assert 0 < np.abs(pixels_a - pixels_b).mean() < 60  # jittered, still the same poster


def test_the_same_seed_writes_the_same_files(base: list[dict], tmp_path: Path) -> None:
    written = []
    for run in ("a", "b"):
        dataset = scale.write_dataset(scale.synthetic_movies(base, 2, seed=7), tmp_path / run, workers=1)
        written.append({p.name: p.read_bytes() for p in sorted(dataset.iterdir())})
    assert written[0] == written[1]
    jittered = next(name for name in written[0] if name.endswith("_1.jpeg"))
    Image.open(io.BytesIO(written[0][jittered])).verify()


def test_a_skipped_stage_skips_what_reads_it_but_not_the_ensemble() -> None:
    stages = scale.resolved_stages(PROJECT_ROOT)
    skipped = scale.downstream(stages, {"embed_text"})
    assert {"embed_text", "train@text_encoder", "train@fusion"} <= skipped  # fusion reads data/features
    assert "ensemble" not in skipped and "train@text_ml" not in skipped and "train@image_dl" not in skipped


def test_growth_exponent() -> None:
    assert scale.exponent(40.0, 10.0, 4) == pytest.approx(1.0)
    assert scale.exponent(160.0, 10.0, 4) == pytest.approx(2.0)
    assert np.isnan(scale.exponent(1.0, 0.0, 2))
