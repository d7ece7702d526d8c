"""Typed settings: one pydantic model per section validates params.yaml and model specs alike."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest
import yaml
from helpers import PROJECT_ROOT
from helpers.builders import FOREST, IMAGE_DL
from pydantic import ValidationError

from moviegenre.branches.forests import ImageForest
from moviegenre.branches.image_dl import BackboneSettings, ImageCnn, ImageCnnSettings
from moviegenre.branches.registry import NAMES, branch_class, entries
from moviegenre.config.params import load_settings
from moviegenre.config.runtime import RuntimeSettings
from moviegenre.config.settings import to_dict
from moviegenre.core.errors import MovieGenreError
from moviegenre.ensemble.fitting import modalities


def test_a_section_becomes_its_typed_settings_with_nested_groups() -> None:
    settings = load_settings(ImageCnnSettings, "image_dl", PROJECT_ROOT / "params.yaml")
    assert isinstance(settings.backbone, BackboneSettings) and settings.backbone.name == "none"
    assert isinstance(settings.epochs, int) and isinstance(settings.learning_rate, float)
    assert set(BackboneSettings.model_fields) == set(to_dict(settings)["backbone"])
    assert isinstance(load_settings(RuntimeSettings, "runtime", PROJECT_ROOT / "params.yaml"), RuntimeSettings)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"backbone": IMAGE_DL["backbone"] | {"nmae": "vgg16"}}, "unknown key 'image_dl.backbone.nmae'"),
        ({"backbone": {k: v for k, v in IMAGE_DL["backbone"].items() if k != "freeze"}},
         "missing key 'image_dl.backbone.freeze'"),
        ({"epochs": 2.5}, "'image_dl.epochs' must be an integer"),
        ({"augment": "yes"}, "'image_dl.augment' must be true or false"),
    ],
)  # fmt: skip
def test_a_bad_key_is_named_with_its_dotted_path(change: dict, message: str) -> None:
    with pytest.raises(MovieGenreError, match=message.replace("(", r"\(").replace(".", r"\.")):
        ImageCnn(IMAGE_DL | change, 0)


def test_settings_are_frozen() -> None:
    settings = ImageCnn(IMAGE_DL, 0).settings
    with pytest.raises(ValidationError, match="frozen"):
        settings.epochs = 3  # type: ignore[misc]


def test_a_spec_from_another_version_is_refused_with_the_command_that_rebuilds_it(tmp_path: Path) -> None:
    directory = tmp_path / "models" / "image_ml"
    directory.mkdir(parents=True)
    flat = FOREST | {"features": "pca", "n_jobs": -1}  # an older layout: n_jobs lived in the branch's section
    spec = {"branch": "image_ml", "feature_set": "images", "arrays": ["pca"], "input_shape": [8],
            "input_description": "pca 8", "genres": ["A"], "features_fingerprint": "x", "settings": flat,
            "seed": 0, "libraries": {}}  # fmt: skip
    (directory / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(MovieGenreError) as caught:
        ImageForest.load(directory)
    message = str(caught.value)
    assert "unknown key 'image_ml.n_jobs'" in message and "run `dvc repro -s train@image_ml`" in message
    assert str(directory / "spec.json") in message and "\n" not in message


def test_the_registry_names_a_branch_class_per_entry_and_refuses_others(tmp_path: Path) -> None:
    for name in NAMES:
        cls = branch_class(name)
        assert cls.name == name and cls.modality == modalities()[name]
        assert cls.epochs == entries()[name].epochs, f"registry.yaml: {name}'s `epochs` differs from its class's"
        assert set(cls.Settings.model_fields) == set(yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())[name])
        assert typing.get_args(cls.__orig_bases__[0]) == (cls.Settings,), f"{name}: Branch[...] differs from Settings"
    assert list(entries()) == list(NAMES)
    assert {entry.epochs for entry in entries().values()} == {True, False}  # Keras branches and the others
    with pytest.raises(MovieGenreError, match="unknown branch 'nope' \\(known: image_ml, "):
        branch_class("nope")
