"""Shared fixtures: generated datasets and projects, a tiny sentence-encoder preset, a local HTTP server.

Builders and constants live in ``helpers`` (imported by the tests); no test module imports another.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers.builders import IMAGES, PATHS, TEXT, WORDS, data_settings
from helpers.synthetic import make_mmimdb_archive, make_movies, write_mmimdb_dir

# Unit-test modules that train Keras models, load TensorFlow models or drive real servers: seconds
# each, so `pytest -m "not slow and not e2e and not browser"` leaves them out of the quick loop.
SLOW_MODULES = {
    "test_backbones", "test_deep", "test_efficientnet_lite", "test_sentence_encoder", "test_encoder_cache",
    "test_ensemble_fitted_on", "test_fusion", "test_http", "test_poster_encoder", "test_predict_fetch",
    "test_python_api", "test_quiet_tensorflow", "test_serve", "test_server_limits", "test_text_archs",
    "test_verified_artifacts", "test_ensemble", "test_features", "test_branch_contract", "test_cluster",
}  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the unit tests ``unit``, and ``slow`` by module (the e2e modules and the browser tests
    carry their own marks). Then run the ``heavy`` tests first, the other e2e tests next and the
    unit tests last, each in file order: pytest-xdist's processes take work from the end of each
    other's queues, so the queues end in short tests and the processes finish together."""
    for item in items:
        folder, module = item.path.parent.name, item.path.stem
        if folder == "unit":
            item.add_marker(pytest.mark.unit)
            if module in SLOW_MODULES:
                item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: 0 if item.get_closest_marker("heavy") else 1 if item.get_closest_marker("e2e") else 2)


@pytest.fixture(scope="session", autouse=True)
def private_encoder_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test, and every command a test starts, caches exported encoders in a temporary directory,
    never in the user's ~/.cache."""
    directory = tmp_path_factory.mktemp("moviegenre-cache")
    before = os.environ.get("MOVIEGENRE_CACHE")
    os.environ["MOVIEGENRE_CACHE"] = str(directory)
    yield directory
    if before is None:
        os.environ.pop("MOVIEGENRE_CACHE", None)
    else:
        os.environ["MOVIEGENRE_CACHE"] = before


@pytest.fixture(scope="session", autouse=True)
def no_dask_cluster() -> Iterator[None]:
    """No test runs on a cluster a developer's environment names (DASK_SCHEDULER_ADDRESS): the ones
    that want one start it and name it themselves."""
    import dask.config

    before = os.environ.pop("DASK_SCHEDULER_ADDRESS", None)
    with dask.config.set({"scheduler-address": None}):
        yield
    if before is not None:
        os.environ["DASK_SCHEDULER_ADDRESS"] = before


@pytest.fixture
def mmimdb_archive(tmp_path: Path) -> Path:
    return make_mmimdb_archive(tmp_path / "tiny.tar.gz", n=60)


@pytest.fixture
def http_server() -> Iterator[Callable[[Callable[[BaseHTTPRequestHandler], None]], str]]:
    """Start a loopback server whose GET is the given function; yields a URL factory."""
    servers: list[ThreadingHTTPServer] = []

    def serve(handle_get: Callable[[BaseHTTPRequestHandler], None]) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                handle_get(self)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def prepared_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with data/raw and data/prepared built from 90 generated movies.

    Two in three movies have a poster; the rest are plot-only. The cwd moves there, as the
    stages run from the project root.
    """
    from moviegenre.data.prepare import prepare
    from moviegenre.download.ingest import build_raw

    write_mmimdb_dir(tmp_path / "src", make_movies(90, seed=1), poster_every=1, seed=1)
    dataset = tmp_path / "src" / "mmimdb" / "dataset"
    for i, poster in enumerate(sorted(dataset.glob("*.jpeg"))):
        if i % 3 == 2:
            poster.unlink()
    monkeypatch.chdir(tmp_path)
    build_raw(data_settings("src"), Path("data/raw"), Path("data/cache"))
    prepare(
        Path("data/raw"),
        Path("data/prepared"),
        Path("metrics/data.json"),
        fractions={"train": 0.6, "val": 0.2, "test": 0.2},
        min_genre_count=2,
        seed=0,
        workers=1,
    )
    return tmp_path


@pytest.fixture
def featurized(prepared_project: Path) -> Path:
    """``prepared_project`` with its image and text features built (data/features/images and text)."""
    from moviegenre.data.table import load_prepared
    from moviegenre.features.images import featurize_images
    from moviegenre.features.text import featurize_text

    table, _ = load_prepared(PATHS.prepared)
    featurize_images(table, IMAGES, seed=0, out_dir=PATHS.features("images"))
    featurize_text(table, TEXT, out_dir=PATHS.features("text"))
    return prepared_project


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-layer BERT with a 44-word vocabulary, saved as a KerasHub preset (random weights)."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(0)
    directory = tmp_path_factory.mktemp("presets") / "tiny"
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True).save_to_preset(str(directory))
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary),
        num_layers=1,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=64,
    )
    backbone.save_to_preset(str(directory))
    return directory


@pytest.fixture(scope="session")
def trained_tiny_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny trained project (``helpers.tiny_project``), built once per pytest run and shared by
    its test processes (``built_once``); a module that writes into its project takes a copy
    (``copy_of_tiny_project``), never this one."""
    from helpers.once_per_run import built_once
    from helpers.tiny_project import build_tiny_project

    return built_once(tmp_path_factory, "tiny-project", build_tiny_project)
