"""`moviegenre serve`'s work: check the options, load the artifacts, serve until stopped.

The options are checked and the port probed first (``config``), so a mistake costs no model
loading; the predictor loads before the port opens, so an artifact that is missing or fails
its checks is one line and no server.
"""

from __future__ import annotations

import logging
import time

from moviegenre.core.paths import ProjectPaths
from moviegenre.serve.config import check_options, server_config
from moviegenre.serve.limits import MAX_CONNECTIONS

log = logging.getLogger(__name__)


def serve(
    paths: ProjectPaths, host: str, port: int, max_upload_mb: float, extra_hosts: tuple[str, ...] = (),
    max_inflight_mb: float | None = None, max_connections: int = MAX_CONNECTIONS,
) -> None:  # fmt: skip
    """Check the options, load the artifacts (an error is one line before the port opens), then
    serve until stopped."""
    check_options(host, port, max_upload_mb, max_inflight_mb, max_connections, extra_hosts)
    import uvicorn

    from moviegenre.predict.predictor import Predictor
    from moviegenre.serve.app import create_app
    from moviegenre.serve.middleware import allowed_hosts

    began = time.perf_counter()
    predictor = Predictor(paths, ("poster", "plot"))
    log.info("loaded %s in %.1f s", ", ".join(predictor.branches), time.perf_counter() - began)
    app = create_app(predictor, paths, max_upload_mb, hosts=allowed_hosts(host, extra_hosts),
                     max_inflight_mb=max_inflight_mb)  # fmt: skip
    uvicorn.Server(server_config(app, host, port, max_connections)).run()
