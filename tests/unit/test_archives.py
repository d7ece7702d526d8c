"""Safe extraction: hostile members are refused by name; damaged archives, empty ones and bombs say so."""

from __future__ import annotations

import gzip
import io
import os
import random
import stat
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from helpers.builders import LIMITS, data_settings

from moviegenre.core.errors import MovieGenreError
from moviegenre.download.archives import Limits, extract


def _tar_with(path: Path, member: tarfile.TarInfo, data: bytes = b"x") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        member.size = len(data) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return path


@pytest.mark.parametrize(
    ("name", "kind", "linkname", "reason"),
    [
        ("../evil", tarfile.REGTYPE, "", "'..'"),
        ("/etc/evil", tarfile.REGTYPE, "", "absolute"),
        ("link", tarfile.SYMTYPE, "../../outside", "outside"),
        ("hard", tarfile.LNKTYPE, "/etc/passwd", "outside"),
        ("dev", tarfile.CHRTYPE, "", "device"),
    ],
)
def test_hostile_tar_member_is_refused(tmp_path: Path, name: str, kind: bytes, linkname: str, reason: str) -> None:
    member = tarfile.TarInfo(name)
    member.type = kind
    member.linkname = linkname
    archive = _tar_with(tmp_path / "bad.tar.gz", member)
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(MovieGenreError) as caught:
        extract(archive, dest, limits=LIMITS, progress=False)
    assert name in str(caught.value) and reason in str(caught.value)
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize("tar_format", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_a_tar_member_whose_name_is_not_utf8_is_refused_in_one_line(tmp_path: Path, tar_format: int) -> None:
    from moviegenre.download.ingest import build_raw

    archive = tmp_path / "latin.tar"
    record = b'{"title": "t", "year": 2000, "genres": ["Drama"], "plot": ["a plot"]}'
    # The name's bytes as written: é in Latin-1, not UTF-8 (PAX keeps them raw with hdrcharset=BINARY).
    with tarfile.open(archive, "w", format=tar_format, encoding="utf-8", errors="surrogateescape") as tar:
        for name in ("dataset/1.json", "dataset/caf\udce9.json"):
            member = tarfile.TarInfo(name)
            member.size = len(record)
            tar.addfile(member, io.BytesIO(record))
    with pytest.raises(MovieGenreError) as caught:
        build_raw(data_settings(archive, poster_workers=1), tmp_path / "raw", tmp_path / "cache")
    assert str(caught.value) == f"{archive}: refusing member 'dataset/caf\\xe9.json': name is not UTF-8"
    assert not (tmp_path / "raw").exists()


def test_zip_with_parent_path_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../evil", "x")
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(MovieGenreError, match=r"\.\./evil"):
        extract(archive, dest, limits=LIMITS, progress=False)


def test_truncated_archive_is_reported(tmp_path: Path, mmimdb_archive: Path) -> None:
    truncated = tmp_path / "cut.tar.gz"
    truncated.write_bytes(mmimdb_archive.read_bytes()[: mmimdb_archive.stat().st_size // 2])
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(MovieGenreError, match="truncated or corrupt archive"):
        extract(truncated, dest, limits=LIMITS, progress=False)


def test_good_zip_extracts(tmp_path: Path) -> None:
    archive = tmp_path / "ok.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a/b.txt", "hello")
    dest = tmp_path / "out"
    dest.mkdir()
    extract(archive, dest, limits=LIMITS, progress=False)
    assert (dest / "a" / "b.txt").read_text() == "hello"


# --- Damage without a checksum: every case is one line, never a partial extraction --------------


def _files(n: int = 6, size: int = 3000) -> dict[str, bytes]:
    """Members with distinct, barely compressible bytes, so a cut or a flip lands in real data."""
    rng = random.Random(0)
    return {f"d/m{i}.bin": rng.randbytes(size) for i in range(n)}


def _tar_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _member_offsets(tar_bytes: bytes) -> list[int]:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        return [m.offset for m in tar.getmembers()]


def _corrupt(tmp_path: Path, filename: str, data: bytes, **kwargs) -> str:
    """Write ``data`` as ``filename``, extract it, and return the one-line error it must give."""
    archive = tmp_path / filename
    archive.write_bytes(data)
    dest = tmp_path / "out"
    dest.mkdir(exist_ok=True)
    with pytest.raises(MovieGenreError) as caught:
        extract(archive, dest, limits=LIMITS, progress=False, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("compress", [False, True])
def test_tar_cut_at_a_member_boundary_is_truncated(tmp_path: Path, compress: bool) -> None:
    whole = _tar_bytes(_files())
    cut = whole[: _member_offsets(whole)[3]]  # headers and data of three members, nothing else
    data = gzip.compress(cut) if compress else cut  # a gzip stream that is itself intact
    message = _corrupt(tmp_path, "cut.tar.gz" if compress else "cut.tar", data)
    assert "truncated or corrupt archive" in message and "end-of-archive" in message


def test_tar_cut_inside_a_member_is_truncated(tmp_path: Path) -> None:
    whole = _tar_bytes(_files())
    message = _corrupt(tmp_path, "cut.tar", whole[: _member_offsets(whole)[3] + 700])
    assert "truncated or corrupt archive" in message


def test_tar_with_a_damaged_header_mid_way_is_corrupt(tmp_path: Path) -> None:
    whole = bytearray(_tar_bytes(_files()))
    at = _member_offsets(bytes(whole))[2]
    whole[at : at + 100] = b"\xff" * 100  # tarfile alone would stop here and call it the end
    message = _corrupt(tmp_path, "bad.tar", bytes(whole))
    assert "truncated or corrupt archive" in message and f"{at:,}" in message


def test_zero_block_then_more_members_is_corrupt(tmp_path: Path) -> None:
    first = _tar_bytes({"a.txt": b"a"})
    message = _corrupt(tmp_path, "joined.tar", first + _tar_bytes({"b.txt": b"b"}))
    assert "truncated or corrupt archive" in message


@pytest.mark.parametrize("where", [0.0, 0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95, 1.0])
def test_gzip_with_flipped_bytes_is_corrupt(tmp_path: Path, where: float) -> None:
    data = bytearray(gzip.compress(_tar_bytes(_files(n=12))))
    at = min(int(where * len(data)), len(data) - 16)
    data[at : at + 16] = bytes(b ^ 0x5A for b in data[at : at + 16])
    assert "truncated or corrupt archive" in _corrupt(tmp_path, "flipped.tar.gz", bytes(data))


def test_spliced_gzip_streams_are_corrupt(tmp_path: Path) -> None:
    """The first half of one download resumed with the second half of another."""
    one = gzip.compress(_tar_bytes(_files(n=12)))
    other = gzip.compress(_tar_bytes({k: v[::-1] for k, v in _files(n=12).items()}))
    spliced = one[: len(one) // 2] + other[len(other) // 2 :]
    assert "truncated or corrupt archive" in _corrupt(tmp_path, "spliced.tar.gz", spliced)


def test_gzip_with_trailing_garbage_is_corrupt(tmp_path: Path) -> None:
    data = gzip.compress(_tar_bytes(_files(n=2))) + b"garbage after the stream"
    assert "truncated or corrupt archive" in _corrupt(tmp_path, "tail.tar.gz", data)


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_zip_with_a_corrupt_member_is_corrupt(tmp_path: Path, method: int) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as zf:
        for name, data in _files(n=3).items():
            zf.writestr(name, data)
    data = bytearray(buffer.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        second = zf.infolist()[1]
    at = second.header_offset + 30 + len(second.filename) + 100  # inside the second member's data
    data[at] ^= 0xFF
    message = _corrupt(tmp_path, "bad.zip", bytes(data))
    assert "truncated or corrupt archive" in message


def test_zip_without_its_central_directory_is_corrupt(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("a.txt", "x" * 1000)
    data = buffer.getvalue()
    assert "truncated or corrupt archive" in _corrupt(tmp_path, "cut.zip", data[: len(data) - 30])


def test_hard_link_to_a_member_not_in_the_archive_is_named(tmp_path: Path) -> None:
    link = tarfile.TarInfo("posters/link.jpeg")
    link.type = tarfile.LNKTYPE
    link.linkname = "posters/absent.jpeg"
    message = _corrupt(tmp_path, "link.tar.gz", _tar_with(tmp_path / "x.tar.gz", link).read_bytes())
    assert "posters/link.jpeg" in message and "posters/absent.jpeg" in message


def test_hard_link_to_an_earlier_member_extracts(tmp_path: Path) -> None:
    archive = tmp_path / "ok.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("a.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
        link = tarfile.TarInfo("b.txt")
        link.type = tarfile.LNKTYPE
        link.linkname = "a.txt"
        tar.addfile(link)
    dest = tmp_path / "out"
    dest.mkdir()
    assert extract(archive, dest, limits=LIMITS, progress=False) == 2
    assert (dest / "b.txt").read_text() == "hello"


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_empty_archive_says_empty(tmp_path: Path, kind: str) -> None:
    archive = tmp_path / f"empty.{kind}"
    if kind == "zip":
        zipfile.ZipFile(archive, "w").close()
    else:
        tarfile.open(archive, "w").close()
    message = _corrupt(tmp_path, archive.name, archive.read_bytes(), name="my-source")
    assert message == "my-source: empty archive (no members)"


# --- Limits: a bomb is refused before it lands, naming the member and the setting --------------


def _bomb(path: Path, megabytes: int = 5) -> Path:
    zeros = b"\0" * (megabytes << 20)
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("ok.txt", "fine")
            zf.writestr("zeros.bin", zeros)
    else:
        with tarfile.open(path, "w:gz") as tar:
            for name, data in (("ok.txt", b"fine"), ("zeros.bin", zeros)):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("name", ["bomb.tar.gz", "bomb.zip"])
@pytest.mark.parametrize(
    ("limits", "setting"),
    [
        (LIMITS, "data.max_compression_ratio=100"),
        (replace(LIMITS, max_extract_gb=0.001, max_compression_ratio=1e6), "data.max_extract_gb=0.001"),
        (replace(LIMITS, max_members=1), "data.max_members=1"),
    ],
)
def test_bomb_crossing_a_limit_names_member_and_setting(
    tmp_path: Path, name: str, limits: Limits, setting: str
) -> None:
    archive = _bomb(tmp_path / name)
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(MovieGenreError) as caught:
        extract(archive, dest, limits=limits, progress=False)
    assert "'zeros.bin'" in str(caught.value) and setting in str(caught.value)
    assert not (dest / "zeros.bin").exists()


def test_the_shipped_limits_let_an_ordinary_archive_through(tmp_path: Path, mmimdb_archive: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    assert extract(mmimdb_archive, dest, limits=LIMITS, progress=False) == 1 + 1 + 2 * 60  # dirs + files
    assert len(list((dest / "mmimdb" / "dataset").iterdir())) == 120


def test_extracted_modes_follow_the_umask_not_the_archive(tmp_path: Path) -> None:
    archive = tmp_path / "private.tar"
    with tarfile.open(archive, "w") as tar:
        folder = tarfile.TarInfo("d")
        folder.type, folder.mode = tarfile.DIRTYPE, 0o700
        tar.addfile(folder)
        info = tarfile.TarInfo("d/f.txt")
        info.size, info.mode = 1, 0o600
        tar.addfile(info, io.BytesIO(b"x"))
    dest = tmp_path / "out"
    dest.mkdir()
    old = os.umask(0o022)
    try:
        extract(archive, dest, limits=LIMITS, progress=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE((dest / "d").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "d" / "f.txt").stat().st_mode) == 0o644
