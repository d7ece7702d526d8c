"""The sentence encoder for prediction, exported once as a SavedModel and read from a cache.

Building the encoder from its preset is most of a one-movie prediction beyond importing
TensorFlow: importing KerasHub, building BERT's layers (with random values the checkpoint then
overwrites) and tracing the tokenizer and the forward pass. Its SavedModel export loads
already traced, and gives the same vectors (the same graph, the same weights).

An entry is keyed by the encoder's state (``encoder.json``: preset, sha256 of weights and
vocabulary, sequence length, precision) and the versions of the libraries that write and read
SavedModels. A new checkpoint, new settings or an upgrade make a new key, never a stale hit;
the first prediction after one pays the export once. A damaged entry is rebuilt
with a warning. The cache is derived, per user, and never a DVC output: deleting it costs
time, not results.

``MOVIEGENRE_CACHE`` sets the directory (default ``$XDG_CACHE_HOME/moviegenre``, else
``~/.cache/moviegenre``); ``MOVIEGENRE_CACHE=off`` turns the cache off.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

from moviegenre.core.errors import MovieGenreError
from moviegenre.features.sentence_encoder import SentenceEncoder, load_encoder
from moviegenre.features.store import ENCODER_STATE

log = logging.getLogger(__name__)

CACHE_ENV = "MOVIEGENRE_CACHE"
OFF = "off"
# the libraries whose versions decide what a SavedModel holds and how it reads back
LIBRARIES = ("tensorflow", "tensorflow-text", "keras", "keras-hub")


def cache_root() -> Path | None:
    """The cache directory, or None when ``MOVIEGENRE_CACHE=off``."""
    setting = os.environ.get(CACHE_ENV, "").strip()
    if setting.lower() == OFF:
        return None
    if setting:
        return Path(setting).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base) if base else Path.home() / ".cache") / "moviegenre"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def cache_key(state: dict) -> str:
    """A short hash of the encoder's state and the library versions (read from metadata: no imports)."""
    payload = {"encoder": state, "libraries": {name: _version(name) for name in LIBRARIES}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def _read_state(feature_dir: Path) -> dict | None:
    try:
        state = json.loads((feature_dir / ENCODER_STATE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # load_encoder says what is wrong with it, in its own words
    return state if isinstance(state, dict) else None


def _write_entry(encoder: SentenceEncoder, entry: Path) -> None:
    """Export into a temporary sibling, then rename: a reader never sees half an entry, and of
    two processes exporting at once the first rename wins and the other's copy is dropped."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".tmp", dir=entry.parent))
    try:
        encoder.export(tmp)
        os.replace(tmp, entry)
    except OSError:
        if not entry.is_dir():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_cached_encoder(feature_dir: Path) -> SentenceEncoder:
    """The encoder that wrote ``feature_dir``, from the cache when it holds it, else built and cached."""
    root, state = cache_root(), _read_state(feature_dir)
    if root is None or state is None:
        return load_encoder(feature_dir)
    entry = root / "encoders" / cache_key(state)
    if entry.is_dir():
        try:
            encoder = SentenceEncoder.from_export(entry)
        except MovieGenreError as exc:
            log.warning("%s; rebuilding it from the preset", exc)
        else:
            if encoder.state() == state:
                log.info("sentence encoder from the cache: %s", entry)
                return encoder
            log.warning("%s: holds another encoder than %s; rebuilding it", entry, feature_dir / ENCODER_STATE)
        shutil.rmtree(entry, ignore_errors=True)
    encoder = load_encoder(feature_dir)
    try:
        _write_entry(encoder, entry)
        log.info("sentence encoder exported to the cache: %s", entry)
    except OSError as exc:
        log.warning("%s: cannot write the encoder cache (%s); each prediction builds the encoder anew", entry, exc)
    return encoder
