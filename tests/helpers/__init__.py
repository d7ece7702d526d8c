"""What the tests share: paths, small settings, generated data and project copies (no tests here)."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHARED = PROJECT_ROOT.parent / "shared"
SHARED_ARCHIVE = SHARED / "datasets" / "mmimdb-subset.tar.gz"
