"""The Dask engine on an in-process cluster: shards, order, versions, faults, and the same bytes as in-process."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import dask
import numpy as np
import pytest
from distributed import LocalCluster
from helpers.builders import FOREST, LONG, TEXTS
from helpers.synthetic import make_movies, poster_bytes

from moviegenre import cluster
from moviegenre.branches import forests
from moviegenre.branches.base import FitContext, Rows
from moviegenre.branches.forests import ImageForest, TextForest
from moviegenre.cluster import Shard, versions
from moviegenre.cluster.engine import CONNECT_TIMEOUT_KEY, Engine, connect_timeout_s
from moviegenre.cluster.shards import SHARD_ROWS_KEY, batches_per_shard, grouped
from moviegenre.config.runtime import RuntimeSettings
from moviegenre.core.errors import MovieGenreError

# the functions below reach the workers by value: a worker process cannot import this test module
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    """Two single-threaded workers in this process, as one engine: what DASK_SCHEDULER_ADDRESS would name."""
    with (
        LocalCluster(processes=False, n_workers=2, threads_per_worker=1, dashboard_address=":0") as local,
        cluster.engine(local.scheduler_address, "test") as connected,
    ):
        assert connected is not None
        yield connected


def _texts(n: int) -> tuple[list[str], list[str]]:
    movies = make_movies(n, seed=5)
    return [" ".join([m["plot"]] * (1 + i % 7)) for i, m in enumerate(movies)], [m["id"] for m in movies]


def _load_offset(offset: int) -> int:
    return offset


def _slow_then_add(offset: int, payload: tuple[int, float]) -> int:
    index, pause = payload
    time.sleep(pause)
    return index + offset


def _fail_on_three(offset: int, payload: int) -> int:
    if payload == 3:
        raise ValueError("shard three is bad\nsecond line")
    return payload


def _refuse(offset: int, payload: int) -> int:
    raise MovieGenreError("poster.jpg: not a readable image (broken)")


def _cannot_load() -> None:
    raise RuntimeError("the weights are not there")


def _exit_worker(model: int, payload: int) -> int:
    if payload == 1:
        os._exit(1)
    return payload


# --- shards ---------------------------------------------------------------------------------------


def test_shards_are_whole_batches_and_do_not_depend_on_the_workers() -> None:
    assert batches_per_shard(16, rows=256) == 16 and batches_per_shard(16, rows=100) == 6
    assert batches_per_shard(512, rows=256) == 1  # a batch larger than a shard: one batch a shard
    with dask.config.set({SHARD_ROWS_KEY: 64}):
        assert batches_per_shard(8) == 8
    assert [list(g) for g in grouped(list(range(7)), 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    for bad in (0, -3, "many", 2.5):
        with dask.config.set({SHARD_ROWS_KEY: bad}), pytest.raises(MovieGenreError, match=r"moviegenre\.shard-rows"):
            batches_per_shard(8)


def test_a_shard_is_named_by_its_first_movies() -> None:
    named = Shard(4, 10, ("0000001", "0000002", "0000003"), None).name()
    assert named == "shard 4 (movies 0000001, 0000002, 0000003, ...)"
    assert Shard(0, 1, ("0000009",), None).name() == "shard 0 (movies 0000009)"


# --- choosing and reaching the engine ----------------------------------------------------------------


def test_no_address_is_in_process_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    with dask.config.set({"scheduler-address": None}), cluster.engine() as nothing:
        assert nothing is None and cluster.describe(nothing) == "in-process"


def test_an_unreachable_scheduler_is_one_line_naming_it_within_bounded_time() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    started = time.monotonic()
    with (
        dask.config.set({"scheduler-address": address, CONNECT_TIMEOUT_KEY: "1.5s"}),
        pytest.raises(MovieGenreError) as caught,
        cluster.engine(),
    ):
        pass
    assert time.monotonic() - started < 1.5 + 5
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"scheduler {address} (Dask config scheduler-address)")
    assert "cannot connect within 1.5 s" in message
    with (
        dask.config.set({CONNECT_TIMEOUT_KEY: "1s"}),
        pytest.raises(MovieGenreError, match=r"scheduler nonsense::: \(--scheduler\): cannot connect"),
        cluster.engine("nonsense:::"),
    ):
        pass


def test_the_connect_timeout_is_ten_seconds_unless_dask_config_says_otherwise() -> None:
    assert connect_timeout_s() == 10.0
    for value, seconds in (("1 minute", 60.0), (3, 3.0), ("250ms", 0.25)):
        with dask.config.set({CONNECT_TIMEOUT_KEY: value}):
            assert connect_timeout_s() == seconds
    for bad in (0, -1, "soon", True, float("inf")):
        with dask.config.set({CONNECT_TIMEOUT_KEY: bad}), pytest.raises(MovieGenreError) as caught:
            connect_timeout_s()
        assert str(caught.value) == (
            f"Dask config moviegenre.connect-timeout (DASK_MOVIEGENRE__CONNECT_TIMEOUT): {bad!r}; "
            "expected a positive duration such as 10s"
        )


def test_the_engine_describes_its_cluster(engine: Engine) -> None:
    described = cluster.describe(engine)
    assert isinstance(described, dict)
    assert described["workers"] == 2 and described["threads"] == 2
    assert described["scheduler"] == engine.address


def test_a_worker_with_other_versions_is_refused_before_any_work(engine: Engine) -> None:
    engine.check_versions()  # the same process: the same versions and code
    driver = versions.package_versions()
    with pytest.raises(MovieGenreError) as caught:
        engine.check_versions(driver | {"numpy": "0.0.1"})
    message = str(caught.value)
    assert "\n" not in message and message.startswith("worker ")
    assert f"numpy {driver['numpy']} (driver: 0.0.1)" in message and "(and 1 more)" in message
    with pytest.raises(MovieGenreError, match=r"moviegenre code [0-9a-f]{16} \(driver: 0000\)"):
        engine.check_versions(driver | {versions.CODE: "0000"})


# --- the ordered shard map -------------------------------------------------------------------------


def test_results_come_back_in_shard_order_whatever_order_the_workers_finish(engine: Engine) -> None:
    shards = [Shard(i, 2, (f"id{i}",), (i, 0.3 if i % 3 == 0 else 0.0)) for i in range(9)]
    with engine.loaded("offset", _load_offset, 100) as model:
        results = list(engine.map(model, _slow_then_add, iter(shards), total=18, desc="test", unit=" rows"))
    assert results == [100 + i for i in range(9)]
    assert list(cluster.in_process_map(100, _slow_then_add, shards, total=18, desc="test", unit=" rows")) == results


def test_a_failing_shard_is_one_line_naming_it_and_its_movies(engine: Engine) -> None:
    shards = [Shard(i, 1, (f"00{i}", f"01{i}"), i) for i in range(6)]
    with engine.loaded("offset", _load_offset, 0) as model, pytest.raises(MovieGenreError) as caught:
        list(engine.map(model, _fail_on_three, shards, total=6, desc="test", unit=" rows"))
    message = str(caught.value)
    assert message.startswith("shard 3 (movies 003, 013): failed on worker ")
    assert message.endswith(" (ValueError: shard three is bad)")
    with engine.loaded("offset", _load_offset, 0) as model, pytest.raises(MovieGenreError) as caught:
        list(engine.map(model, _refuse, shards, total=6, desc="test", unit=" rows"))
    assert str(caught.value) == "poster.jpg: not a readable image (broken)"  # the worker's own line, as in-process


def test_a_model_a_worker_cannot_load_is_one_line_before_any_shard(engine: Engine) -> None:
    with pytest.raises(MovieGenreError) as caught, engine.loaded("broken model", _cannot_load):
        pytest.fail("no shard may run")
    message = str(caught.value)
    assert message.startswith("worker ") and message.endswith(
        ": cannot load the broken model (RuntimeError: the weights are not there)"
    )


def test_a_shard_that_keeps_killing_its_workers_is_one_line_naming_it() -> None:
    """Real worker processes (the task ends its process): Dask gives up after allowed-failures + 1 deaths."""
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        LocalCluster(processes=True, n_workers=2, threads_per_worker=1, dashboard_address=":0") as local,
        cluster.engine(local.scheduler_address, "test") as connected,
    ):
        assert connected is not None
        shards = [Shard(i, 1, (f"tt{i}",), i) for i in range(4)]
        with connected.loaded("offset", _load_offset, 0) as model, pytest.raises(MovieGenreError) as caught:
            list(connected.map(model, _exit_worker, shards, total=4, desc="test", unit=" rows"))
    message = str(caught.value)
    assert "\n" not in message and message.startswith("shard 1 (movies tt1): the workers running it died 1 time (last ")
    assert message.endswith("nothing was written")


# --- the same bytes as in-process --------------------------------------------------------------------


@pytest.mark.parametrize("long_texts", ["cut", "windows"])
def test_plot_embeddings_on_the_cluster_are_the_in_process_bytes(
    engine: Engine, tiny_preset: Path, long_texts: str
) -> None:
    from moviegenre.features.sentence_encoder import SentenceEncoder

    encoder = SentenceEncoder.load(str(tiny_preset), None, 32, long_texts=long_texts)
    texts, ids = _texts(150)
    texts += [*TEXTS, LONG * 3]
    ids += [f"x{i}" for i in range(len(texts) - len(ids))]
    here = encoder.encode(texts, 16, progress=False)
    for rows in (32, 48, 10_000):  # several shards (one with a partial batch), or all in one
        with dask.config.set({SHARD_ROWS_KEY: rows}):
            there = encoder.encode(texts, 16, progress=False, engine=engine, ids=ids)
        assert there.tobytes() == here.tobytes(), rows


def test_poster_embeddings_on_the_cluster_are_the_in_process_bytes(engine: Engine, tmp_path: Path) -> None:
    from moviegenre.features.poster_encoder import PosterEncoder, PosterEncoderSettings

    paths = []
    for i, movie in enumerate(make_movies(45, seed=2)):
        paths.append(str(tmp_path / f"{i}.jpeg"))
        Path(paths[-1]).write_bytes(poster_bytes(movie["genres"], seed=i))
    settings = PosterEncoderSettings(
        backbone="efficientnet_lite0", input_size=64, resize="squash", batch_size=8, precision="float32"
    )
    encoder = PosterEncoder.load(settings)
    here = encoder.encode(paths, progress=False)
    with dask.config.set({SHARD_ROWS_KEY: 16}):
        there = encoder.encode(paths, progress=False, engine=engine, ids=[f"p{i}" for i in range(45)])
    assert there.tobytes() == here.tobytes()
    Path(paths[9]).write_bytes(b"not a jpeg")
    with dask.config.set({SHARD_ROWS_KEY: 16}), pytest.raises(MovieGenreError, match=f"^{paths[9]}: not a readable"):
        encoder.encode(paths, progress=False, engine=engine)


@pytest.mark.parametrize("branch_class", [ImageForest, TextForest])
def test_a_forest_fitted_and_scored_on_the_cluster_is_the_in_process_bytes(
    engine: Engine, branch_class: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import scipy.sparse as sp
    from distributed import get_task_stream

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 12)).astype(np.float32)
    labels = (x[:, :4] + rng.normal(scale=0.5, size=(300, 4)) > 0).astype(np.uint8)
    if branch_class is TextForest:
        x = sp.csr_matrix(np.where(x > 0.5, x, 0))
    settings = FOREST | {"features": "pca" if branch_class is ImageForest else "tfidf", "n_estimators": 60}
    runtime = RuntimeSettings(
        device="cpu", mixed_precision=False, deterministic=True, intra_op_threads=0, inter_op_threads=0, n_jobs=-1
    )
    monkeypatch.setattr(forests, "PREDICT_BLOCK", 64)  # several blocks of rows to put back in order
    saved, proba = {}, {}
    for where in ("here", "there"):
        branch = branch_class(settings, 3)
        on_cluster = engine.joblib() if where == "there" else contextlib.nullcontext()
        with on_cluster, get_task_stream(engine.client) as stream:
            branch.fit(Rows(x, labels), Rows(x[:0], labels[:0]), FitContext(["A", "B", "C", "D"], runtime))
            proba[where] = branch.predict_proba(x)
        if where == "there":
            assert len(stream.data) > 0  # the trees and the rows really went to the workers
        (tmp_path / where).mkdir()
        branch.save_model(tmp_path / where)
        saved[where] = {p.name: p.read_bytes() for p in sorted((tmp_path / where).iterdir())}
    assert saved["there"] == saved["here"]
    assert proba["there"].tobytes() == proba["here"].tobytes()
