"""What ``GET /health`` reports: what the server loaded, so that a client can tell which models
answer it (their fingerprints) and from which commit."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

from moviegenre.core.digests import file_digests
from moviegenre.core.paths import ProjectPaths


def model_fingerprints(paths: ProjectPaths, names: list[str]) -> dict[str, str]:
    """sha256 (16 hex digits) of each model directory's files, so /health says which models answer."""
    return {
        name: hashlib.sha256(json.dumps(file_digests(paths.model(name)), sort_keys=True).encode()).hexdigest()[:16]
        for name in names
    }


def git_commit(root: Path) -> str | None:
    """The checkout's commit, or None outside git (a copy, a container)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def loaded(predictor: Any, paths: ProjectPaths, max_upload_mb: float) -> dict[str, Any]:
    """The part of ``/health`` fixed at start-up (``models.Health`` describes it all)."""
    return {
        "status": "ok",
        "genres": len(predictor.genres),
        "branches": list(predictor.branches),
        "ensemble": {
            "method": predictor.ensemble.method,
            "average": predictor.ensemble.average,
            "branches": list(predictor.ensemble.branches),
        },
        "models": model_fingerprints(paths, [*predictor.branches, "ensemble"]),
        "git_commit": git_commit(paths.root),
        "max_upload_mb": max_upload_mb,
    }
