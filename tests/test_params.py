"""params.yaml validation: the shipped file is valid; bad keys are named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import PROJECT_ROOT

from moviegenre import params
from moviegenre.errors import MovieGenreError


def _edited(tmp_path: Path, section: str, key: str, value: object) -> Path:
    loaded = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    loaded[section][key] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(loaded))
    return path


def test_shipped_params_are_valid() -> None:
    everything = params.load_all(PROJECT_ROOT / "params.yaml")
    assert everything["data"]["source"].endswith("mmimdb-subset.tar.gz")


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("data", "retriez", 3, "unknown key 'data.retriez'"),
        ("data", "retries", "three", "'data.retries' must be an integer"),
        ("data", "retries", -1, "'data.retries' must be in"),
        ("data", "sha256", "abc", "'data.sha256' must be 64 hex digits"),
        ("prepare", "min_genre_count", True, "'prepare.min_genre_count' must be an integer"),
    ],
)
def test_bad_key_is_named(tmp_path: Path, section: str, key: str, value: object, message: str) -> None:
    path = _edited(tmp_path, section, key, value)
    with pytest.raises(MovieGenreError) as caught:
        params.load_section(section, path)
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_missing_params_file(tmp_path: Path) -> None:
    with pytest.raises(MovieGenreError, match="params file not found"):
        params.load_section("data", tmp_path / "params.yaml")
