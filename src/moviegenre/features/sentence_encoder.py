"""Plot embeddings from a pretrained sentence encoder (all-MiniLM-L6-v2 by default).

Each plot becomes one L2-normalised vector: lower-cased WordPiece tokens (at most
``sequence_length`` with [CLS] and [SEP]), the encoder's last hidden states averaged over the
non-padding tokens, then scaled to unit length, as sentence-transformers does.

A plot longer than that is either cut (``long_texts: cut``, what sentence-transformers does) or
split into the fewest windows of equal length that fit (``long_texts: windows``), each encoded
as above with its own [CLS] and [SEP], and the plot's vector is the mean of its windows'
vectors, scaled to unit length again: the end of a long synopsis, where a thriller's twist or a
romance's wedding tends to be, then counts as much as its opening.

Encoding is the slow part of the pipeline on a CPU, so ``SentenceEncoder.encode``:

- tokenizes every text once, in a graph traced once (several times faster than calling the
  KerasHub tokenizer eagerly on a list);
- sorts texts by token count and pads each batch only to its own longest text, rounded up to
  a multiple of ``BUCKET`` (most plots are far shorter than 256 tokens, and attention costs
  the square of the padded length); rows go back to input order afterwards;
- runs the backbone and the pooling in one ``tf.function`` with a dynamic-shape signature,
  traced once per encoder, never retraced whatever the batch shapes;
- optionally computes in ``mixed_bfloat16`` (a CPU with AVX512-BF16 or AMX, or a recent GPU):
  faster where the hardware has it, rows within float noise (cosine) of float32's.

The same texts give the same bytes on the same machine: batches and their shapes depend only
on the texts. A text's embedding may move in the 7th decimal with its batch neighbours
(the padded length changes the order of floating-point sums).

The fitted state (``encoder.json``) names the preset as it was given, not resolved, plus the
sha256 of its weights and vocabulary, so that two runs, or a run in a DVC experiment copy,
write the same bytes and ``moviegenre predict`` rebuilds the very same encoder. Prediction
reads it from a SavedModel export of that encoder (``SentenceEncoder.export``, cached by
``encoder_cache``), which gives the same vectors without KerasHub's build and tracing costs.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field
from tqdm import tqdm

from moviegenre.cluster.shards import Shard, batches_per_shard, first_ids, grouped
from moviegenre.config.sections import Sha256, Text
from moviegenre.config.settings import Settings
from moviegenre.core.digests import sha256_file
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.files import json_text
from moviegenre.core.paths import project_root
from moviegenre.core.runtime.precision import resolve_precision
from moviegenre.features.store import ENCODER_STATE, write_embedding_set

if TYPE_CHECKING:
    from moviegenre.cluster.engine import Engine

log = logging.getLogger(__name__)


class EmbedTextSettings(Settings):
    preset: Text  # a directory, or hf://owner/name
    sha256: Sha256 | None
    sequence_length: int = Field(ge=8, le=512)
    long_texts: Literal["cut", "windows"]
    batch_size: int = Field(ge=1, le=4096)
    precision: Literal["auto", "float32", "mixed_bfloat16"]


FEATURE_SET = "embeddings"
STATE_FILES = {"embeddings": (ENCODER_STATE,)}

HF_SCHEME = "hf://"
DEFAULT_PRESET = "hf://sentence-transformers/all-MiniLM-L6-v2"
PRECISIONS = ("float32", "mixed_bfloat16")
POOLING = "mean"  # mean of the last hidden states over non-padding tokens, [CLS] and [SEP] included
LONG_TEXTS = ("cut", "windows")  # what becomes of a text longer than sequence_length (module docstring)
MAX_WINDOWS = 16  # windows: a text beyond this many windows' worth is cut there (bounds one request's cost)
NORMALISATION = "l2"
BUCKET = 16  # padded lengths are multiples of this: few distinct shapes, little padding
TOKENIZE_CHUNK = 1024  # texts per tokenizer call: bounds the ragged tensors' memory
EAGER_TOKENIZE = 64  # up to this many texts, tokenize eagerly rather than trace the tokenizer
IDENTITY_KEYS = ("preset", "layout", "weights", "vocabulary", "lowercase", "strip_accents")
EXPORT_MODEL = "saved_model"  # SentenceEncoder.export: the SavedModel's directory
EXPORT_STATE = "export.json"  # ... and the state and special token ids beside it
# the files a Hugging Face BERT checkpoint needs here (hf:// downloads only these)
HF_FILES = ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")


@dataclass(frozen=True)
class PresetFiles:
    """Where a preset's pieces are: KerasHub's own layout and Hugging Face's differ."""

    directory: Path
    layout: str  # "transformers" or "keras_hub"
    weights: Path
    vocabulary: Path


def _first_line(exc: BaseException) -> str:
    """An exception as one short line: third-party messages often span many."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _download_hf(preset: str) -> Path:
    """Fetch an ``hf://owner/name`` checkpoint into the Hugging Face cache; one line on failure."""
    repo_id = preset.removeprefix(HF_SCHEME).strip("/")
    hint = (
        f"download it (e.g. `hf download {repo_id} --local-dir ../shared/models/{repo_id.split('/')[-1]}`) "
        "and set embed_text.preset to that local directory"
    )
    try:
        import huggingface_hub

        return Path(huggingface_hub.snapshot_download(repo_id, allow_patterns=list(HF_FILES)))
    except Exception as exc:  # no network, unknown repo, bad handle: all end the same way for a user
        raise MovieGenreError(f"{preset}: cannot be fetched ({_first_line(exc)}); {hint}") from exc


def resolve_preset(preset: str) -> Path:
    """The local directory behind ``embed_text.preset``: a path (relative to the project) or ``hf://``."""
    if not preset:
        raise MovieGenreError(
            f"embed_text.preset is empty; set it to a local all-MiniLM-L6-v2 directory or {DEFAULT_PRESET}"
        )
    if preset.startswith(HF_SCHEME):
        return _download_hf(preset)
    if "://" in preset:
        raise MovieGenreError(f"{preset}: unsupported preset scheme; use a local directory or {DEFAULT_PRESET}")
    path = Path(preset).expanduser()
    path = path if path.is_absolute() else project_root() / path
    if not path.is_dir():
        raise MovieGenreError(
            f"{path}: preset directory not found; set embed_text.preset to a directory holding all-MiniLM-L6-v2 "
            f"or {DEFAULT_PRESET}"
        )
    return path


def _read_json(path: Path) -> dict[str, Any]:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MovieGenreError(f"{path}: unreadable ({_first_line(exc)}); re-download the preset") from exc
    if not isinstance(payload, dict):
        raise MovieGenreError(f"{path}: not a JSON object; re-download the preset")
    return payload


def _require(path: Path) -> Path:
    if not path.is_file():
        raise MovieGenreError(f"{path}: missing from the preset; re-download it or fix embed_text.preset")
    return path


def inspect_preset(directory: Path) -> PresetFiles:
    """Check that ``directory`` holds a BERT preset in a layout KerasHub reads, before loading it."""
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise MovieGenreError(
            f"{directory}: not a KerasHub/Hugging Face preset (no config.json); set embed_text.preset to a directory "
            f"holding all-MiniLM-L6-v2 or {DEFAULT_PRESET}"
        )
    config = _read_json(config_path)
    if "model_type" in config:
        if config["model_type"] != "bert":
            raise MovieGenreError(f"{config_path}: model_type {config['model_type']!r}, expected 'bert'")
        _require(directory / "tokenizer_config.json")
        return PresetFiles(
            directory, "transformers", _require(directory / "model.safetensors"), _require(directory / "vocab.txt")
        )
    if config.get("class_name") == "BertBackbone":
        _require(directory / "tokenizer.json")
        return PresetFiles(
            directory,
            "keras_hub",
            _require(directory / "model.weights.h5"),
            _require(directory / "assets" / "tokenizer" / "vocabulary.txt"),
        )
    raise MovieGenreError(f"{config_path}: neither a Hugging Face BERT config nor a KerasHub BertBackbone preset")


def verify_weights(files: PresetFiles, expected: str | None) -> str:
    """sha256 of the weights; raise naming both hashes when it is not ``expected``."""
    actual = sha256_file(files.weights)
    if expected and actual != expected.strip().lower():
        raise MovieGenreError(
            f"{files.weights}: sha256 mismatch: expected {expected.strip().lower()}, got {actual} "
            "(a different or corrupted checkpoint; fix embed_text.preset or embed_text.sha256)"
        )
    return actual


def _tokenizer_kwargs(files: PresetFiles) -> dict[str, Any]:
    """Hugging Face's BERT tokenizer strips accents when it lower-cases; KerasHub's converter does not.

    Without this, 'café' becomes [UNK] instead of 'cafe' (330 of the 7,895 MM-IMDb plots
    tokenize differently from the checkpoint's own tokenizer; 4 do with it).
    """
    if files.layout != "transformers":
        return {}
    config = _read_json(files.directory / "tokenizer_config.json")
    strip = config.get("strip_accents")
    return {"strip_accents": bool(config.get("do_lower_case", False) if strip is None else strip)}


def _load_keras_hub(files: PresetFiles, precision: str) -> tuple[Any, Any]:
    """Backbone and tokenizer; any failure inside KerasHub means the preset is unusable."""
    import keras_hub

    try:
        tokenizer = keras_hub.models.BertTokenizer.from_preset(str(files.directory), **_tokenizer_kwargs(files))
        backbone = keras_hub.models.BertBackbone.from_preset(str(files.directory), dtype=precision)
    except MovieGenreError:
        raise
    except Exception as exc:  # garbled weights, config or vocabulary surface as many exception types
        raise MovieGenreError(
            f"{files.directory}: malformed preset ({_first_line(exc)}); re-download it or fix embed_text.preset"
        ) from exc
    return backbone, tokenizer


def _split(flat: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """A ragged batch's rows from its flat values and row lengths."""
    return np.split(flat.astype(np.int32), np.cumsum(lengths)[:-1]) if len(lengths) else []


def _bucketed(length: int, cap: int) -> int:
    return min(cap, -(-length // BUCKET) * BUCKET)


class SentenceEncoder:
    """A frozen BERT sentence encoder: texts in, unit-length float32 vectors out, fast on a CPU.

    It is made in one of two ways, with the same arithmetic:

    - ``load`` builds it from the preset with KerasHub: what the stage runs;
    - ``from_export`` reads what ``export`` wrote: a TensorFlow SavedModel of the ready
      tokenizer and pooled forward pass. Loading it skips importing KerasHub, building BERT's
      layers (with random values the checkpoint then overwrites) and tracing, most of a
      one-movie prediction's cost, which is why prediction uses it (encoder_cache).
    """

    def __init__(
        self,
        tokenize: Callable[[list[str]], list[np.ndarray]],
        embed_batch: Callable[[Any, Any], Any],
        special_ids: tuple[int, int, int],
        state: dict[str, Any],
        keras_parts: tuple[Any, Any] | None = None,
    ) -> None:
        self._tokenize, self._embed_batch = tokenize, embed_batch
        self._cls, self._sep, self._pad = special_ids
        self._state = state
        self.sequence_length, self.precision, self.dim = state["sequence_length"], state["precision"], state["dim"]
        self.long_texts = state.get("long_texts", "cut")  # states written before windows existed were cut
        self.max_windows = int(state.get("max_windows", 1))
        self.identity = {key: state[key] for key in IDENTITY_KEYS}
        # the KerasHub backbone and tokenizer when built from the preset (export needs them)
        self.backbone: Any = keras_parts[0] if keras_parts else None
        self.tokenizer: Any = keras_parts[1] if keras_parts else None
        self._module: Any = None  # the loaded SavedModel when read by from_export: its functions need it alive
        # where a worker of a cluster finds the same preset (set by load): the resolved directory, or hf://
        self.location: str | None = None

    @classmethod
    def from_keras(
        cls,
        backbone: Any,
        tokenizer: Any,
        sequence_length: int,
        identity: dict[str, Any],
        precision: str,
        long_texts: str = "cut",
    ) -> SentenceEncoder:
        """Wrap a KerasHub backbone and tokenizer: the pooled forward pass and the tokenizer traced once each."""
        import tensorflow as tf

        if hasattr(tokenizer, "_allow_python_workflow"):  # recent KerasHub: eager calls would take its
            tokenizer._allow_python_workflow = False  # pure-Python WordPiece; keep the TensorFlow Text ops
        ids = tf.TensorSpec([None, None], tf.int32)
        state = {
            **identity,
            "sequence_length": int(sequence_length),
            "long_texts": long_texts,
            "max_windows": MAX_WINDOWS if long_texts == "windows" else 1,
            "pooling": POOLING,
            "normalisation": NORMALISATION,
            "precision": precision,
            "dim": int(backbone.hidden_dim),
        }
        traced_tokenize = tf.function(tokenizer.tokenize, input_signature=[tf.TensorSpec([None], tf.string)])

        def tokenize(texts: list[str]) -> list[np.ndarray]:
            """A few texts (one movie, a request to the server) are tokenized eagerly, by the same
            TensorFlow Text ops: tracing costs seconds, the eager call milliseconds (the ids are the
            same either way). Many go through the graph traced once: eagerly they take several
            times longer, and a ``tf.data`` map would retrace on every call."""
            batch = tf.constant(texts, dtype=tf.string)
            if len(texts) <= EAGER_TOKENIZE:
                return [np.asarray(piece, dtype=np.int32) for piece in tokenizer.tokenize(batch)]
            ragged = traced_tokenize(batch)
            return _split(ragged.flat_values.numpy(), ragged.row_lengths().numpy())

        embed_batch = tf.function(  # traced once, whatever the batch shapes: no retracing
            lambda token_ids, padding_mask: pooled_output(backbone, token_ids, padding_mask), input_signature=[ids, ids]
        )
        special = (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id)
        return cls(tokenize, embed_batch, special, state, keras_parts=(backbone, tokenizer))

    @classmethod
    def load(
        cls,
        preset: str,
        sha256: str | None,
        sequence_length: int,
        *,
        precision: str = "float32",
        long_texts: str = "cut",
    ) -> SentenceEncoder:
        """Check and load ``preset``; ``sha256`` (of the weights file) pins the exact checkpoint."""
        if precision not in PRECISIONS:
            raise MovieGenreError(f"embed_text.precision: {precision!r}; expected one of {', '.join(PRECISIONS)}")
        if long_texts not in LONG_TEXTS:
            raise MovieGenreError(f"embed_text.long_texts: {long_texts!r}; expected one of {', '.join(LONG_TEXTS)}")
        files = inspect_preset(resolve_preset(preset))
        weights_sha = verify_weights(files, sha256)
        backbone, tokenizer = _load_keras_hub(files, precision)
        limit = int(backbone.max_sequence_length)
        if not 3 <= int(sequence_length) <= limit:
            raise MovieGenreError(
                f"embed_text.sequence_length: {sequence_length} is outside 3..{limit}"
                " (the preset's position embeddings)"
            )
        identity = {
            "preset": preset,
            "layout": files.layout,
            "weights": {"file": files.weights.name, "sha256": weights_sha},
            "vocabulary": {"file": files.vocabulary.name, "sha256": sha256_file(files.vocabulary)},
            "lowercase": bool(tokenizer.lowercase),
            "strip_accents": bool(tokenizer.strip_accents),
        }
        log.info(
            "sentence encoder %s: %s layers, dim %s, %s", preset, backbone.num_layers, backbone.hidden_dim, precision
        )
        encoder = cls.from_keras(backbone, tokenizer, int(sequence_length), identity, precision, long_texts)
        encoder.location = preset if preset.startswith(HF_SCHEME) else str(files.directory)
        return encoder

    def export(self, directory: Path) -> None:
        """Write this encoder as a SavedModel (``saved_model/``) and its state (``export.json``) into ``directory``."""
        import tensorflow as tf

        if self.backbone is None:
            raise MovieGenreError("only an encoder built from its preset can be exported")
        backbone, tokenizer = self.backbone, self.tokenizer

        class Exported(tf.Module):
            def __init__(self) -> None:
                super().__init__()
                # tracked: the SavedModel holds the weights. The tokenizer is not: its WordPiece model is a
                # constant inside the traced graph, and tracking the layer would save (and load) its every function
                self.backbone_variables = list(backbone.variables)

            @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
            def tokenize(self, texts: Any) -> dict[str, Any]:
                ragged = tokenizer.tokenize(texts)
                return {"flat": ragged.flat_values, "lengths": ragged.row_lengths()}

            @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)] * 2)
            def embed(self, token_ids: Any, padding_mask: Any) -> Any:
                return pooled_output(backbone, token_ids, padding_mask)

        tf.saved_model.save(Exported(), str(directory / EXPORT_MODEL))
        payload = {"state": self.state(), "special_ids": [self._cls, self._sep, self._pad]}
        (directory / EXPORT_STATE).write_text(json_text(payload))

    @classmethod
    def from_export(cls, directory: Path) -> SentenceEncoder:
        """The encoder ``export`` wrote into ``directory``; any damage is one MovieGenreError."""
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  registers the WordPiece ops the saved tokenizer calls

        def tokenize(texts: list[str]) -> list[np.ndarray]:
            parts = module.tokenize(tf.constant(texts, dtype=tf.string))
            return _split(parts["flat"].numpy(), parts["lengths"].numpy())

        try:
            payload = json.loads((directory / EXPORT_STATE).read_text(encoding="utf-8"))
            special = (int(payload["special_ids"][0]), int(payload["special_ids"][1]), int(payload["special_ids"][2]))
            module = tf.saved_model.load(str(directory / EXPORT_MODEL))
            encoder = cls(tokenize, module.embed, special, payload["state"])
        except Exception as exc:  # a missing file, a truncated SavedModel, a foreign JSON: all mean "rebuild it"
            raise MovieGenreError(f"{directory}: unreadable encoder export ({_first_line(exc)})") from exc
        encoder._module = module
        return encoder

    def state(self) -> dict[str, Any]:
        """Everything that decides the embeddings, nothing machine- or run-specific (goes into encoder.json)."""
        return dict(self._state)

    def _pieces(self, texts: list[str]) -> list[np.ndarray]:
        """Each text's WordPiece ids, whole, without [CLS] and [SEP]."""
        pieces: list[np.ndarray] = []
        for begin in range(0, len(texts), TOKENIZE_CHUNK):
            pieces.extend(self._tokenize(texts[begin : begin + TOKENIZE_CHUNK]))
        return pieces

    def _wrapped(self, ids: np.ndarray) -> np.ndarray:
        return np.concatenate(([self._cls], ids, [self._sep])).astype(np.int32)

    def token_ids(self, texts: list[str]) -> list[np.ndarray]:
        """WordPiece ids of each text with [CLS] and [SEP], truncated to ``sequence_length``."""
        keep = self.sequence_length - 2
        return [self._wrapped(piece[:keep]) for piece in self._pieces(texts)]

    def windows(self, texts: list[str]) -> tuple[list[np.ndarray], np.ndarray]:
        """The token-id rows to encode, each with [CLS] and [SEP] and at most ``sequence_length`` long,
        and the index of the text each belongs to. Cut: one row per text. Windows: a text of n ids
        becomes ceil(n / (sequence_length - 2)) consecutive rows of equal length (within one id), so
        no row is a short tail, at most ``max_windows`` of them (a longer text is cut there); a
        text that fits is one row, the same as cut's."""
        if self.long_texts == "cut":
            return self.token_ids(texts), np.arange(len(texts))
        keep = self.sequence_length - 2
        rows: list[np.ndarray] = []
        owners: list[int] = []
        for owner, whole in enumerate(self._pieces(texts)):
            piece = whole[: keep * self.max_windows]
            count = max(1, -(-len(piece) // keep))
            bounds = [len(piece) * k // count for k in range(count + 1)]
            rows.extend(self._wrapped(piece[a:b]) for a, b in itertools.pairwise(bounds))
            owners.extend([owner] * count)
        return rows, np.asarray(owners, dtype=int)

    def _padded(self, rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        width = _bucketed(max(len(r) for r in rows), self.sequence_length)
        ids = np.full((len(rows), width), self._pad, dtype=np.int32)
        mask = np.zeros((len(rows), width), dtype=np.int32)
        for i, row in enumerate(rows):
            ids[i, : len(row)], mask[i, : len(row)] = row, 1
        return ids, mask

    def forward(self, token_ids: np.ndarray, padding_mask: np.ndarray) -> np.ndarray:
        """(n, dim) float32 unit rows of one padded batch: the forward pass and the pooling, nothing else."""
        return self._embed_batch(token_ids, padding_mask).numpy()

    def encode(
        self, texts: list[str], batch_size: int, progress: bool = True, *, engine: Engine | None = None,
        ids: Sequence[Any] | None = None,
    ) -> np.ndarray:  # fmt: skip
        """float32 (len(texts), dim), unit rows in input order; batches grouped by token length.

        With an ``engine`` the forward passes run on its cluster, the batches planned here all
        the same, so the bytes are those of the in-process run; ``ids`` (one per text) name a
        shard that fails."""
        if batch_size < 1:
            raise MovieGenreError(f"embed_text.batch_size: {batch_size}; expected a positive integer")
        texts = [str(t) for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        start = time.perf_counter()
        rows, owners = self.windows(texts)
        vectors = out if len(rows) == len(texts) else np.zeros((len(rows), self.dim), dtype=np.float32)
        order = np.argsort([-len(r) for r in rows], kind="stable")  # longest first: the slowest batches show early
        batches = [order[begin : begin + batch_size] for begin in range(0, len(order), batch_size)]
        unit = " plots" if vectors is out else " windows"
        if engine is None:
            with tqdm(total=len(rows), desc="encode plots", unit=unit, disable=not progress) as bar:
                for chosen in batches:
                    vectors[chosen] = self.forward(*self._padded([rows[i] for i in chosen]))
                    bar.update(len(chosen))
        else:
            self._encode_on(engine, rows, batches, batch_size, vectors, owners, ids, unit=unit, progress=progress)
        if vectors is not out:
            out = mean_of_windows(vectors, owners, len(texts))
        elapsed = time.perf_counter() - start
        log.info(
            "encoded %d texts (%d windows) in %.1f s (%.1f texts/s)",
            len(texts), len(rows), elapsed, len(texts) / max(elapsed, 1e-9),
        )  # fmt: skip
        return out

    def _encode_on(
        self, engine: Engine, rows: list[np.ndarray], batches: list[np.ndarray], batch_size: int,
        vectors: np.ndarray, owners: np.ndarray, ids: Sequence[Any] | None, *, unit: str, progress: bool,
    ) -> None:  # fmt: skip
        """The planned ``batches`` in shards of whole batches, consecutive in the plan, padded here
        (workers run the forward pass of these exact arrays), their vectors put back where the
        in-process loop puts them."""
        if self.location is None:
            raise MovieGenreError("only an encoder loaded from its preset can run on a cluster")
        groups = grouped(batches, batches_per_shard(batch_size))

        def shards() -> Iterator[Shard]:
            for index, group in enumerate(groups):
                payload = [self._padded([rows[i] for i in chosen]) for chosen in group]
                named = first_ids(ids, (int(owners[i]) for chosen in group for i in chosen))
                yield Shard(index, sum(len(chosen) for chosen in group), named, payload)

        weights = self.identity["weights"]["sha256"]
        args = (self.location, weights, self.sequence_length, self.precision, self.long_texts)
        with engine.loaded("sentence encoder", load_for_worker, *args) as model:
            results = engine.map(model, forward_shard, shards(), total=len(rows), desc="encode plots", unit=unit,
                                 progress=progress)  # fmt: skip
            for group, result in zip(groups, results, strict=True):
                for chosen, got in zip(group, result, strict=True):
                    vectors[chosen] = got


def load_for_worker(
    location: str, weights_sha256: str, sequence_length: int, precision: str, long_texts: str
) -> SentenceEncoder:
    """The driver's encoder, built by a worker from the same preset, its weights checked by sha256."""
    return SentenceEncoder.load(location, weights_sha256, sequence_length, precision=precision, long_texts=long_texts)


def forward_shard(encoder: SentenceEncoder, batches: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """A shard's task on a worker: the forward pass of each padded batch the driver planned."""
    return [encoder.forward(token_ids, padding_mask) for token_ids, padding_mask in batches]


def mean_of_windows(vectors: np.ndarray, owners: np.ndarray, count: int) -> np.ndarray:
    """(count, dim) unit rows: each text's windows averaged and scaled back to unit length. A text of
    one window keeps its vector bit for bit (it is added to zeros, and not rescaled)."""
    out = np.zeros((count, vectors.shape[1]), dtype=np.float32)
    np.add.at(out, owners, vectors)
    several = np.bincount(owners, minlength=count) > 1
    out[several] /= np.linalg.norm(out[several], axis=1, keepdims=True)
    return out


def pooled_output(backbone: Any, token_ids: Any, padding_mask: Any) -> Any:
    """Mean of the last hidden states over real tokens, L2-normalised, in float32."""
    import tensorflow as tf

    inputs = {"token_ids": token_ids, "segment_ids": tf.zeros_like(token_ids), "padding_mask": padding_mask}
    hidden = tf.cast(backbone(inputs, training=False)["sequence_output"], tf.float32)
    mask = tf.cast(padding_mask, tf.float32)[:, :, None]
    mean = tf.reduce_sum(hidden * mask, axis=1) / tf.reduce_sum(mask, axis=1)
    return tf.math.l2_normalize(mean, axis=-1)


def embed_text(table: pd.DataFrame, settings: EmbedTextSettings, out_dir: Path, engine: Engine | None = None) -> dict:
    """Encode every movie's plot (on ``engine``'s cluster, if given); write index.csv, embeddings.npy and
    encoder.json atomically, here only."""
    missing = {"id", "split", "plot"} - set(table.columns)
    if missing:
        raise MovieGenreError(f"prepared table: missing column(s) {', '.join(sorted(missing))}")
    encoder = SentenceEncoder.load(
        settings.preset,
        settings.sha256,
        settings.sequence_length,
        precision=resolve_precision(settings.precision),
        long_texts=settings.long_texts,
    )
    plots = table["plot"].fillna("").astype(str).tolist()
    embeddings = encoder.encode(plots, settings.batch_size, engine=engine, ids=table["id"].tolist())
    shapes = write_embedding_set(out_dir, table, embeddings, encoder.state())
    log.info("plot embeddings: %s", shapes)
    return shapes


def load_encoder(feature_dir: Path) -> SentenceEncoder:
    """The encoder that wrote ``feature_dir``: same preset, weights, vocabulary and settings."""
    path = feature_dir / ENCODER_STATE
    if not path.is_file():
        raise MovieGenreError(f"{path}: not found (run `dvc repro` for the stage that writes {feature_dir})")
    state = _read_json(path)
    try:
        preset, weights_sha, vocabulary_sha = state["preset"], state["weights"]["sha256"], state["vocabulary"]["sha256"]
        sequence_length = state["sequence_length"]
    except (KeyError, TypeError) as exc:
        raise MovieGenreError(f"{path}: incomplete encoder state ({_first_line(exc)}); rerun the stage") from exc
    encoder = SentenceEncoder.load(
        preset,
        weights_sha,
        sequence_length,
        precision=state.get("precision", "float32"),
        long_texts=state.get("long_texts", "cut"),
    )
    if encoder.identity["vocabulary"]["sha256"] != vocabulary_sha:
        raise MovieGenreError(
            f"{preset}: vocabulary sha256 {encoder.identity['vocabulary']['sha256']} differs from {vocabulary_sha} "
            f"recorded in {path}; point embed_text.preset at the checkpoint the features were made with"
        )
    return encoder
