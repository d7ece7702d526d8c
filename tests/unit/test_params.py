"""params.yaml validation: the shipped file is valid; bad keys are named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers import PROJECT_ROOT

from moviegenre.cli.check import check_params
from moviegenre.config import params
from moviegenre.core.errors import MovieGenreError


def _edited(tmp_path: Path, section: str, key: str, value: object) -> Path:
    loaded = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    loaded[section][key] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(loaded))
    return path


def test_shipped_params_are_valid() -> None:
    everything = check_params(PROJECT_ROOT / "params.yaml")
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
        params.load_section(section, path=path)
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_missing_params_file(tmp_path: Path) -> None:
    with pytest.raises(MovieGenreError, match="params file not found"):
        params.load_section("data", path=tmp_path / "params.yaml")


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("data", "timout_s", 5, "unknown key 'data.timout_s'"),
        ("image_ml", "n_estimators", 0, "'image_ml.n_estimators' must be in [1, 5000], not 0"),
        ("image_dl", "arch", "seed", "not 'seed' (renamed 'classic_cnn')"),
        ("ensemble", "branches", ["image_ml", "nope"], "'ensemble.branches' must be a non-empty list drawn from"),
    ],
)
def test_check_params_names_the_bad_key_in_any_section(
    tmp_path: Path, section: str, key: str, value: object, message: str
) -> None:
    path = _edited(tmp_path, section, key, value)
    with pytest.raises(MovieGenreError) as caught:
        check_params(path)
    assert message in str(caught.value)


def test_check_params_refuses_an_unknown_section(tmp_path: Path) -> None:
    loaded = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    loaded["trainig"] = {"epochs": 3}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(loaded))
    with pytest.raises(MovieGenreError, match="unknown section 'trainig'"):
        check_params(path)
