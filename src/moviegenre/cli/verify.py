"""`moviegenre verify`: re-hash the workspace's pipeline outputs against dvc.lock.

``dvc status`` trusts what its state database recorded for a file of the same size, mtime and
inode, so bytes damaged in place (a failing disk, a tool that restores timestamps) are reported
as up to date. This command reads every byte of
every output dvc.lock lists, computes DVC's own md5 (a directory's from the sorted list of its
files' md5s, as DVC forms it) and names each output, and each file of a directory, that
differs, with the stage that rebuilds it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from dvc.fs import LocalFileSystem
from dvc.ignore import DvcIgnoreFilter
from tqdm import tqdm

from moviegenre.config.params import read_yaml
from moviegenre.core.digests import file_digest
from moviegenre.core.errors import MovieGenreError

log = logging.getLogger(__name__)

_MD5 = re.compile(r"[0-9a-f]{32}(\.dir)?")


@dataclass(frozen=True)
class Difference:
    """An output (or a file inside a directory output) whose bytes are not the ones dvc.lock records."""

    stage: str
    path: str
    problem: str

    def line(self) -> str:
        return f"{self.path}: {self.problem} (stage {self.stage}: `dvc repro --force -s {self.stage}`)"


def _files(directory: Path, ignored: DvcIgnoreFilter) -> list[Path]:
    """The files of a directory output as DVC hashes them: what .dvcignore names left out."""
    found = []
    for folder, subfolders, names in os.walk(directory):
        subfolders[:] = sorted(d for d in subfolders if not ignored.is_ignored_dir(os.path.join(folder, d)))
        found += [Path(folder, n) for n in names if not ignored.is_ignored_file(os.path.join(folder, n))]
    return sorted(found)


def dir_md5(entries: list[dict[str, str]]) -> str:
    """DVC's md5 of a directory: of the JSON list of {md5, relpath} sorted by relpath."""
    ordered = sorted(({"md5": e["md5"], "relpath": e["relpath"]} for e in entries), key=lambda e: e["relpath"])
    return hashlib.md5(json.dumps(ordered, sort_keys=True).encode(), usedforsecurity=False).hexdigest() + ".dir"


def _manifest(root: Path, value: str) -> list[dict[str, str]] | None:
    """The directory's file list from the DVC cache, if present and itself intact."""
    path = root / ".dvc" / "cache" / "files" / "md5" / value[:2] / value[2:]
    try:
        raw = path.read_bytes()
        entries = json.loads(raw)
    except (OSError, ValueError):
        return None
    if hashlib.md5(raw, usedforsecurity=False).hexdigest() + ".dir" != value or not isinstance(entries, list):
        return None
    return entries


def outputs(root: Path) -> list[tuple[str, str, str]]:
    """(stage, path, md5) of every output in dvc.lock."""
    lock = read_yaml(root / "dvc.lock", "dvc.lock")
    stages = lock.get("stages") if isinstance(lock, dict) else None
    if not isinstance(stages, dict):
        raise MovieGenreError(f"{root / 'dvc.lock'}: no stages (run `dvc repro` first)")
    found = []
    for stage, entry in stages.items():
        for out in (entry or {}).get("outs", []) or []:
            value = str(out.get("md5", ""))
            if not _MD5.fullmatch(value):
                raise MovieGenreError(f"{root / 'dvc.lock'}: output {out.get('path')!r} of {stage} has no md5")
            found.append((stage, str(out["path"]), value))
    return found


def verify(root: Path) -> tuple[int, list[Difference]]:
    """How many outputs were checked, and every difference from dvc.lock."""
    checked = outputs(root)
    differences: list[Difference] = []
    ignored = DvcIgnoreFilter(LocalFileSystem(), os.fspath(root.resolve()))
    for stage, name, expected in tqdm(checked, desc="verify", unit=" outputs", disable=None):
        differences += _check(root, stage, name, expected, ignored)
    return len(checked), differences


def _check(root: Path, stage: str, name: str, expected: str, ignored: DvcIgnoreFilter) -> list[Difference]:
    path = root / name
    if not expected.endswith(".dir"):
        if not path.is_file():
            return [Difference(stage, name, "missing")]
        return [] if file_digest(path, "md5") == expected else [Difference(stage, name, "differs from dvc.lock")]
    if not path.is_dir():
        return [Difference(stage, name, "missing")]
    entries = [{"md5": file_digest(f, "md5"), "relpath": f.relative_to(path).as_posix()} for f in _files(path, ignored)]
    if dir_md5(entries) == expected:
        return []
    recorded = _manifest(root, expected)
    if recorded is None:
        return [Difference(stage, name, "differs from dvc.lock (its file list is not in the DVC cache)")]
    have = {e["relpath"]: e["md5"] for e in entries}
    want = {e["relpath"]: e["md5"] for e in recorded}
    out = [Difference(stage, f"{name}/{rel}", "differs from dvc.lock") for rel in sorted(want) if rel in have
           and have[rel] != want[rel]]  # fmt: skip
    out += [Difference(stage, f"{name}/{rel}", "missing") for rel in sorted(set(want) - set(have))]
    out += [Difference(stage, f"{name}/{rel}", "not in dvc.lock") for rel in sorted(set(have) - set(want))]
    return out
