"""End to end on a real Dask cluster: the same bytes as in-process, a lost worker, a poisoned shard, no scheduler.

A scheduler and two single-threaded workers run as processes on 127.0.0.1, each worker with
``tests/helpers/dask_faults.py`` preloaded: files a test writes into its faults folder make a
worker kill itself at a chosen shard. The project is a copy of the tiny pipeline that the e2e
modules share, reproduced in-process on generated data.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from helpers.project import PROJECT_ROOT, dvc, env
from helpers.tiny_pipeline import STAGES_ON_A_CLUSTER, reset_to_commit

pytestmark = [pytest.mark.e2e, pytest.mark.heavy]

SHARD_ROWS = "32"  # two batches a shard: several shards on 120 movies
WAIT_S = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_workers(address: str, count: int) -> None:
    from distributed import Client

    with Client(address, timeout=30, set_as_default=False) as client:
        client.wait_for_workers(count, timeout=WAIT_S)


class Cluster:
    """A scheduler and its workers, each a process group of its own so that the finalizer ends it whole."""

    def __init__(self, root: Path) -> None:
        self.root, self.faults = root, root / "faults"
        self.faults.mkdir(parents=True)
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.processes: list[subprocess.Popen] = []
        self.environment = env() | {"MOVIEGENRE_FAULTS": str(self.faults),
                                    "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"}  # fmt: skip

    def start(self) -> None:
        dask = str(Path(sys.executable).parent / "dask")
        self._start("scheduler", [dask, "scheduler", "--host", "127.0.0.1", "--port", self.address.rsplit(":", 1)[1],
                                  "--no-dashboard"])  # fmt: skip
        preload = str(PROJECT_ROOT / "tests" / "helpers" / "dask_faults.py")
        for name in ("w1", "w2"):
            self._start(name, [dask, "worker", self.address, "--nthreads", "1", "--name", name, "--no-dashboard",
                               "--preload", preload])  # fmt: skip
        wait_for_workers(self.address, 2)

    def _start(self, name: str, command: list[str]) -> None:
        log = (self.root / f"{name}.log").open("w")
        self.processes.append(subprocess.Popen(command, env=self.environment, stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True))  # fmt: skip

    def stop(self) -> None:
        for process in reversed(self.processes):  # the workers first, then the scheduler
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text()


@pytest.fixture(scope="module")
def project(pipeline: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the e2e modules' tiny pipeline on 120 generated movies (its DVC cache included),
    reproduced in-process and committed: the run a cluster's must equal."""
    repo = tmp_path_factory.mktemp("cluster-project") / "repo"
    shutil.copytree(pipeline, repo, symlinks=True)
    reset_to_commit(repo)
    return repo


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory, project: Path) -> Iterator[Cluster]:
    started = Cluster(tmp_path_factory.mktemp("dask"))
    try:
        started.start()
        yield started
    finally:
        started.stop()


def run(
    repo: Path, command: list[str], environment: dict[str, str], check: bool = False
) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=repo, env=environment, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def on(cluster: Cluster) -> dict[str, str]:
    return env() | {"DASK_SCHEDULER_ADDRESS": cluster.address, "DASK_MOVIEGENRE__SHARD_ROWS": SHARD_ROWS}


def lock_without_timings(repo: Path) -> dict[str, dict]:
    """Each stage's deps and outs in dvc.lock, less the timings files' hashes: they are cached DVC
    outputs that change on every run, whichever engine ran it; every other out must not move."""
    stages = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    for stage in stages.values():
        stage["outs"] = [out for out in stage.get("outs", []) if not out["path"].startswith("metrics/timings/")]
    return stages


def repro_on(cluster: Cluster, repo: Path, *stages: str) -> subprocess.CompletedProcess:
    done = run(repo, [sys.executable, "-m", "dvc", "repro", "-f", "-s", *stages], on(cluster))
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    return done


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:") or "Traceback" in line]


def digests(repo: Path, *paths: str) -> dict[str, bytes]:
    files = [f for p in paths for f in ([repo / p] if (repo / p).is_file() else sorted((repo / p).rglob("*")))]
    return {str(f.relative_to(repo)): f.read_bytes() for f in files if f.is_file()}


def test_the_stages_on_the_cluster_write_the_in_process_bytes(project: Path, dask_cluster: Cluster) -> None:
    before = lock_without_timings(project)
    repro_on(dask_cluster, project, *STAGES_ON_A_CLUSTER)
    assert lock_without_timings(project) == before
    engine = {"scheduler": dask_cluster.address, "workers": 2, "threads": 2}
    for timings in ("embed_text", "embed_posters", "image_ml", "text_ml"):
        assert json.loads((project / "metrics/timings" / f"{timings}.json").read_text())["engine"] == engine
    assert json.loads((project / "metrics/timings/text_encoder.json").read_text())["engine"] == "in-process"
    for worker in ("w1", "w2"):  # each worker loaded each encoder once
        log = dask_cluster.log(worker)
        assert log.count("Starting Worker plugin moviegenre-sentence-encoder-") == 1, log
        assert log.count("Starting Worker plugin moviegenre-poster-encoder-") == 1, log


def test_predict_dataset_on_the_cluster_writes_the_in_process_csv(project: Path, dask_cluster: Cluster) -> None:
    from helpers.synthetic import make_mmimdb_archive

    catalogue = make_mmimdb_archive(project.parent / "catalogue.tar.gz", n=300, poster_every=2, seed=11)
    command = [sys.executable, "-m", "moviegenre.cli", "predict", "--dataset", str(catalogue), "--branches"]
    here = run(project, [*command, "--out", "here.csv"], env())
    assert here.returncode == 0, here.stderr
    there = run(project, [*command, "--out", "there.csv", "--scheduler", dask_cluster.address], env())
    assert there.returncode == 0, there.stderr
    assert "wrote 300 movies to there.csv" in there.stderr
    assert (project / "there.csv").read_bytes() == (project / "here.csv").read_bytes()
    assert (project / "there.score.json").read_bytes() == (project / "here.score.json").read_bytes()


def test_a_worker_killed_mid_run_costs_a_retry_not_the_bytes(project: Path, dask_cluster: Cluster) -> None:
    wait_for_workers(dask_cluster.address, 2)
    before = lock_without_timings(project)
    (dask_cluster.faults / "kill-after-first-shard").touch()  # one worker dies, once, at its second shard
    try:
        repro_on(dask_cluster, project, "embed_posters")
    finally:
        (dask_cluster.faults / "kill-after-first-shard").unlink()
    assert (dask_cluster.faults / "killed").exists()  # a worker did die in the middle
    assert lock_without_timings(project) == before


def test_a_shard_that_kills_every_worker_is_one_line_and_leaves_the_outputs(
    project: Path, dask_cluster: Cluster
) -> None:
    wait_for_workers(dask_cluster.address, 2)
    outputs = ("data/features/poster/poster_embeddings", "metrics/timings/embed_posters.json")
    kept = digests(project, *outputs)
    (dask_cluster.faults / "kill-shard-1").touch()
    try:
        done = run(project, [sys.executable, "stages/embed_posters.py"], on(dask_cluster))
    finally:
        (dask_cluster.faults / "kill-shard-1").unlink()
    assert done.returncode == 2
    (line,) = error_lines(done.stderr)
    assert line.startswith("error: shard 1 (movies ") and "the workers running it died 2 times" in line, line
    assert line.endswith("nothing was written")
    assert digests(project, *outputs) == kept
    assert "embed_posters" not in dvc(project, "status", "embed_posters").stdout  # up to date: nothing moved


def test_a_scheduler_that_cannot_be_reached_is_one_line_within_seconds(project: Path) -> None:
    """Within Dask's setting moviegenre.connect-timeout: two seconds here, ten by default."""
    address = f"tcp://127.0.0.1:{free_port()}"
    wait = env() | {"DASK_MOVIEGENRE__CONNECT_TIMEOUT": "2s"}
    started = time.monotonic()
    done = run(project, [sys.executable, "stages/embed_text.py"], wait | {"DASK_SCHEDULER_ADDRESS": address})
    assert time.monotonic() - started < 2 + 15
    assert done.returncode == 2
    (line,) = error_lines(done.stderr)
    assert line.startswith(f"error: scheduler {address} (DASK_SCHEDULER_ADDRESS): cannot connect within 2 s ")
    started = time.monotonic()
    command = [sys.executable, "-m", "moviegenre.cli", "predict", "--dataset", "none.tar.gz", "--out", "x.csv"]
    done = run(project, [*command, "--scheduler", address], wait)
    assert time.monotonic() - started < 2 + 15
    assert done.returncode == 2
    (line,) = error_lines(done.stderr)
    assert line.startswith(f"error: scheduler {address} (--scheduler): cannot connect within 2 s ")
    assert not (project / "x.csv").exists()
