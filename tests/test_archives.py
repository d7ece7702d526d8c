"""Safe extraction: hostile members are refused by name; broken archives say so."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from moviegenre.core.errors import MovieGenreError
from moviegenre.data.archives import extract


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
        extract(archive, dest, progress=False)
    assert name in str(caught.value) and reason in str(caught.value)
    assert not (tmp_path / "evil").exists()


def test_zip_with_parent_path_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../evil", "x")
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(MovieGenreError, match=r"\.\./evil"):
        extract(archive, dest, progress=False)


def test_truncated_archive_is_reported(tmp_path: Path, mmimdb_archive: Path) -> None:
    truncated = tmp_path / "cut.tar.gz"
    truncated.write_bytes(mmimdb_archive.read_bytes()[: mmimdb_archive.stat().st_size // 2])
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(MovieGenreError, match="truncated or malformed"):
        extract(truncated, dest, progress=False)


def test_good_zip_extracts(tmp_path: Path) -> None:
    archive = tmp_path / "ok.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a/b.txt", "hello")
    dest = tmp_path / "out"
    dest.mkdir()
    extract(archive, dest, progress=False)
    assert (dest / "a" / "b.txt").read_text() == "hello"
