"""Poster embeddings from the packaged Lite0 weights, and the branches on them, on tiny generated data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.builders import CPU, PATHS, TRAINING, check_keras_outputs, embed_settings

from moviegenre.branches.encoder_fusion import EncoderFusion
from moviegenre.branches.fusion import FusionNet
from moviegenre.branches.image_encoder import ImageEncoderHead
from moviegenre.branches.training import train_branch
from moviegenre.core.errors import MovieGenreError
from moviegenre.data.table import load_prepared
from moviegenre.features.poster_encoder import (
    FEATURE_SET,
    PosterEncoderSettings,
    embed_posters,
    load_poster_encoder,
)
from moviegenre.features.sentence_encoder import embed_text
from moviegenre.poster_network.torch_checkpoint import LITE0_SHA256

SETTINGS = PosterEncoderSettings(backbone="efficientnet_lite0", input_size=64, resize="squash", batch_size=16,
                                 precision="float32")  # fmt: skip
FILES = ("embeddings.npy", "index.csv", "encoder.json")


@pytest.fixture
def embedded(featurized: Path) -> Path:
    table, _ = load_prepared(PATHS.prepared)
    embed_posters(table, SETTINGS, PATHS.features(FEATURE_SET))
    return featurized


def test_the_stage_writes_one_vector_per_poster_and_repeats_byte_for_byte(embedded: Path) -> None:
    table, _ = load_prepared(PATHS.prepared)
    directory = PATHS.features(FEATURE_SET)
    vectors = np.load(directory / "embeddings.npy")
    index = pd.read_csv(directory / "index.csv", dtype={"id": str})
    with_poster = table[table["poster"].notna()]
    assert vectors.shape == (len(with_poster), 1280) and vectors.dtype == np.float32
    assert index["id"].tolist() == with_poster["id"].tolist() and np.isfinite(vectors).all()
    state = json.loads((directory / "encoder.json").read_text())
    assert state["weights_sha256"] == LITE0_SHA256 and state["input_size"] == 64 and state["dim"] == 1280
    first = {name: (directory / name).read_bytes() for name in FILES}
    embed_posters(table, SETTINGS, directory)
    assert {name: (directory / name).read_bytes() for name in FILES} == first


def test_prediction_rebuilds_the_stage_encoder(embedded: Path) -> None:
    table, _ = load_prepared(PATHS.prepared)
    posters = table.loc[table["poster"].notna(), "poster"].tolist()[:3]
    stored = np.load(PATHS.features(FEATURE_SET) / "embeddings.npy")[:3]
    again = load_poster_encoder(PATHS.features(FEATURE_SET)).encode(posters, progress=False)
    np.testing.assert_allclose(again, stored, atol=1e-5)


def test_a_damaged_state_or_another_backbone_is_one_line(embedded: Path, tmp_path: Path) -> None:
    directory = PATHS.features(FEATURE_SET)
    (directory / "encoder.json").write_text("{not json")
    with pytest.raises(MovieGenreError, match=r"encoder\.json: not a poster encoder's state .*dvc repro embed_posters"):
        load_poster_encoder(directory)
    table, _ = load_prepared(PATHS.prepared)
    for backbone, message in [
        ("NoSuchNet", "is not efficientnet_lite0, a keras.applications network"),
        ("missing.keras", "missing.keras: embed_posters.backbone names a .keras file that does not exist"),
    ]:
        with pytest.raises(MovieGenreError, match=message) as caught:
            embed_posters(
                table,
                PosterEncoderSettings(
                    backbone=backbone, input_size=64, resize="crop", batch_size=8, precision="float32"
                ),
                tmp_path / "out",
            )
        assert "\n" not in str(caught.value) and not (tmp_path / "out").exists()


def test_a_keras_file_of_ones_own_is_a_backbone(embedded: Path, tmp_path: Path) -> None:
    import keras

    inputs = keras.Input((32, 32, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
    keras.Model(inputs, pooled).save(tmp_path / "mine.keras")
    table, _ = load_prepared(PATHS.prepared)
    settings = PosterEncoderSettings(
        backbone=str(tmp_path / "mine.keras"), input_size=32, resize="crop", batch_size=8, precision="float32"
    )
    embed_posters(table, settings, tmp_path / "out")
    vectors = np.load(tmp_path / "out" / "embeddings.npy")
    assert vectors.shape[1] == 3 and (vectors >= 0).all() and (vectors <= 1).all()  # mean RGB in [0, 1]
    assert json.loads((tmp_path / "out" / "encoder.json").read_text())["weights_sha256"] != LITE0_SHA256


HEAD = TRAINING | {"epochs": 2, "patience": 2, "hidden_units": 0, "dropout": 0.0}


def test_the_poster_head_trains_and_writes_its_outputs(embedded: Path) -> None:
    metrics = train_branch(ImageEncoderHead(HEAD | {"epochs": 1, "standardise": True, "l2": 0.1}, 0), PATHS, CPU)
    check_keras_outputs("image_encoder", metrics)


def test_the_encoder_fusion_and_fusion_on_embeddings_train(embedded: Path, tiny_preset: Path) -> None:
    table, _ = load_prepared(PATHS.prepared)
    embed_text(table, embed_settings(tiny_preset), PATHS.features("embeddings"))
    settings = HEAD | {"epochs": 1, "l2": 0.03, "poster_weight": 0.5}
    check_keras_outputs("encoder_fusion", train_branch(EncoderFusion(settings, 0), PATHS, CPU))
    spec = json.loads(Path("models/encoder_fusion/spec.json").read_text())
    assert spec["input_description"] == "poster 1280 + plot 16"
    fusion = TRAINING | {"method": "concat", "image_input": "embeddings", "text_input": "embeddings", "units": 8,
                         "conv_filters": 4, "downsample": 2, "augment": False}  # fmt: skip
    check_keras_outputs("fusion", train_branch(FusionNet(fusion, 0), PATHS, CPU))


def test_image_dl_fine_tunes_lite0_from_the_packaged_weights() -> None:
    from helpers.builders import IMAGE_DL, NO_BACKBONE

    from moviegenre.branches.base import FitContext
    from moviegenre.branches.image_dl import ImageCnn
    from moviegenre.poster_network.torch_checkpoint import installed_lite0_checkpoint, read_state_dict

    backbone = NO_BACKBONE | {"name": "efficientnet_lite0", "input_size": [64, 64], "freeze": False}
    branch = ImageCnn(IMAGE_DL | {"epochs": 3, "backbone": backbone}, 0)
    model = branch.builder(np.zeros((1, 48, 32, 3), np.uint8), FitContext([], CPU))(4)
    stem = read_state_dict(installed_lite0_checkpoint(), LITE0_SHA256)["_conv_stem.weight"]
    kernel = np.asarray(model.get_layer("backbone").get_layer("stem_conv").kernel)
    np.testing.assert_array_equal(kernel, stem.transpose(2, 3, 1, 0))  # OIHW -> HWIO, the file's own values
    assert branch.fine_tune() is not None and not model.get_layer("backbone").trainable  # frozen for the warm-up
    scores = model(np.random.default_rng(0).integers(0, 256, (2, 48, 32, 3), dtype=np.uint8), training=False)
    assert np.isfinite(np.asarray(scores)).all() and scores.shape == (2, 4)
