"""Every bound the server puts on what a client can make it spend, in one place.

docs/predict-and-serve.md ("Limits and errors") lists them with the answer each one gives;
the command line's options default to these values and are checked against their ranges.
A plot's length and a poster's size and pixels are the command line's limits too, so they
live below both (``moviegenre.predict.inputs``, ``moviegenre.data.posters``).
"""

from __future__ import annotations

from moviegenre.predict.inputs import MAX_POSTER_MB

# Request bodies
DEFAULT_MAX_UPLOAD_MB = MAX_POSTER_MB  # `moviegenre predict --poster` takes the same posters
UPLOAD_MB_RANGE = (0.001, 1000.0)  # --max-upload-mb: a kilobyte at least, a gigabyte at most
MAX_INFLIGHT_MB = 100.0  # request bodies held at once, all connections together (or --max-upload-mb if larger)
MAX_INFLIGHT_MB_BOUND = 100_000.0  # --max-inflight-mb at most: beyond it the cap is no cap
MAX_JSON_DEPTH = 32  # nesting of a JSON body ({"plot": "..."} needs 1)

# Connections and time
MAX_CONNECTIONS = 128  # open connections (uvicorn's limit_concurrency); a request on one more gets 503
FILES_RESERVED = 64  # file descriptors the server keeps for itself (models, uploads, logs) under ulimit -n
MAX_HEADER_BYTES = 16 * 1024  # a request line and headers (uvicorn's h11_max_incomplete_event_size): 400 past it
HEADER_TIMEOUT_S = 10.0  # a request's headers, from the connection opening or the previous answer
BODY_TIMEOUT_S = 60.0  # a request's whole body, from its headers: --max-upload-mb at 170 KB/s or faster
KEEP_ALIVE_S = 5  # an idle keep-alive connection between requests (uvicorn's timeout_keep_alive)
SHUTDOWN_S = 5  # on SIGTERM, how long open connections may take before the server exits
RETRY_AFTER_S = 2  # what a 503 tells the client to wait (a full queue, a full budget, too many connections)

# Predictions
MAX_BATCH = 16  # movies per Predictor call, from requests that queued up meanwhile
MAX_QUEUE = 64  # movies waiting for the predictor; one more is answered 503
CHECK_THREADS = 2  # posters decoded for their check at once, off the event loop


def inflight_mb(max_upload_mb: float, max_inflight_mb: float | None) -> float:
    """The in-flight cap: ``--max-inflight-mb``, else ``MAX_INFLIGHT_MB`` or one whole body if larger."""
    return max(MAX_INFLIGHT_MB, max_upload_mb) if max_inflight_mb is None else max_inflight_mb
