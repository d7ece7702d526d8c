"""The exported sentence encoder and its cache: same vectors as the KerasHub build, rebuilt when stale."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# the tiny random BERT preset of test_embeddings, and its texts
from helpers.builders import TEXTS, embed_settings

from moviegenre.core.errors import MovieGenreError
from moviegenre.features.sentence_encoder import EXPORT_MODEL, SentenceEncoder, embed_text, load_encoder
from moviegenre.predict import encoder_cache
from moviegenre.predict.featurizers import load_featurizer


@pytest.fixture
def features(tiny_preset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose plot embeddings were written by the tiny preset (long plots in windows); its own empty cache."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MOVIEGENRE_CACHE", str(tmp_path / "cache"))
    shutil.copytree(tiny_preset, tmp_path / "models" / "tiny")
    table = pd.DataFrame({"id": [f"m{i}" for i in range(len(TEXTS))], "split": ["train", "val", "test"] * 2})
    table["plot"] = TEXTS
    out = tmp_path / "features" / "embeddings"
    settings = embed_settings("models/tiny", batch_size=4, long_texts="windows")  # TEXTS' long one: several windows
    embed_text(table, settings, out)
    return out


def entries(root: Path) -> list[Path]:
    return sorted(p for p in (root / "encoders").iterdir() if not p.name.startswith(".")) if root.is_dir() else []


def test_an_export_gives_the_same_ids_and_vectors_as_the_keras_build(features: Path, tmp_path: Path) -> None:
    built = load_encoder(features)
    built.export(tmp_path / "export")
    exported = SentenceEncoder.from_export(tmp_path / "export")
    assert exported.backbone is None and exported.state() == built.state()
    many = TEXTS * 20  # past EAGER_TOKENIZE: the traced tokenizer, and several batches
    assert [r.tolist() for r in exported.token_ids(many)] == [r.tolist() for r in built.token_ids(many)]
    for texts in (TEXTS[:1], many):
        np.testing.assert_allclose(
            exported.encode(texts, 4, progress=False), built.encode(texts, 4, progress=False), rtol=0, atol=1e-6
        )
    stored = np.load(features / "embeddings.npy")
    np.testing.assert_allclose(exported.encode(TEXTS, 4, progress=False), stored, rtol=0, atol=1e-6)


def test_the_second_load_reads_the_cache_without_building(features: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = encoder_cache.cache_root()
    first = load_featurizer("embeddings", features)(TEXTS)["embeddings"]
    assert len(entries(root)) == 1 and (entries(root)[0] / EXPORT_MODEL).is_dir()

    def no_build(feature_dir: Path) -> SentenceEncoder:
        raise AssertionError("the encoder was built from its preset although the cache holds it")

    monkeypatch.setattr(encoder_cache, "load_encoder", no_build)
    again = encoder_cache.load_cached_encoder(features)
    assert again.backbone is None  # read from the export
    np.testing.assert_allclose(again.encode(TEXTS, 4, progress=False), first, rtol=0, atol=1e-6)


def test_other_encoder_settings_get_their_own_entry(features: Path) -> None:
    root = encoder_cache.cache_root()
    encoder_cache.load_cached_encoder(features)
    state = json.loads((features / "encoder.json").read_text())
    (features / "encoder.json").write_text(json.dumps({**state, "sequence_length": 16}))
    shorter = encoder_cache.load_cached_encoder(features)
    assert shorter.sequence_length == 16 and len(entries(root)) == 2
    assert max(len(r) for r in shorter.token_ids([TEXTS[1]])) == 16


def test_a_library_upgrade_changes_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    state = {"preset": "p", "sequence_length": 8}
    before = encoder_cache.cache_key(state)
    monkeypatch.setattr(encoder_cache, "_version", lambda package: "99.0" if package == "tensorflow" else "1.0")
    assert encoder_cache.cache_key(state) != before
    assert encoder_cache.cache_key(state) == encoder_cache.cache_key(dict(reversed(state.items())))


def test_a_damaged_entry_is_rebuilt_with_a_warning(features: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = encoder_cache.cache_root()
    expected = encoder_cache.load_cached_encoder(features).encode(TEXTS, 4, progress=False)
    (entries(root)[0] / EXPORT_MODEL / "saved_model.pb").write_bytes(b"truncated")
    with caplog.at_level(logging.WARNING):
        rebuilt = encoder_cache.load_cached_encoder(features)
    assert "unreadable encoder export" in caplog.text and "rebuilding" in caplog.text
    np.testing.assert_allclose(rebuilt.encode(TEXTS, 4, progress=False), expected, rtol=0, atol=1e-6)
    assert SentenceEncoder.from_export(entries(root)[0]).state() == rebuilt.state()  # the entry is whole again


def test_a_damaged_export_is_one_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "export.json").write_text("{}")
    with pytest.raises(MovieGenreError, match="export: unreadable encoder export"):
        SentenceEncoder.from_export(tmp_path / "export")


def test_cache_off_writes_nothing(features: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOVIEGENRE_CACHE", "off")
    assert encoder_cache.cache_root() is None
    encoder = encoder_cache.load_cached_encoder(features)
    assert encoder.backbone is not None and not (tmp_path / "cache").exists()


def test_an_unwritable_cache_still_predicts(
    features: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    monkeypatch.setenv("MOVIEGENRE_CACHE", str(tmp_path / "a-file" / "cache"))
    with caplog.at_level(logging.WARNING):
        vectors = encoder_cache.load_cached_encoder(features).encode(TEXTS, 4, progress=False)
    assert "cannot write the encoder cache" in caplog.text
    np.testing.assert_allclose(vectors, np.load(features / "embeddings.npy"), rtol=0, atol=1e-6)


def test_default_location_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOVIEGENRE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert encoder_cache.cache_root() == tmp_path / "xdg" / "moviegenre"
