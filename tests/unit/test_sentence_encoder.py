"""Plot embeddings: a tiny random BERT preset for the mechanics, the shared checkpoint for meaning."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import SHARED
from helpers.builders import LONG, SHORT, TEXTS, embed_settings

from moviegenre.core.digests import sha256_file
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.runtime import precision
from moviegenre.features import sentence_encoder
from moviegenre.features.sentence_encoder import SentenceEncoder, embed_text, load_encoder

SHARED_PRESET = SHARED / "models" / "all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def encoder(tiny_preset: Path) -> SentenceEncoder:
    return SentenceEncoder.load(str(tiny_preset), None, 32)


def damaged_copy(tiny_preset: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "preset"
    shutil.copytree(tiny_preset, copy)
    return copy


def one_line_error(call, *args) -> str:
    with pytest.raises(MovieGenreError) as info:
        call(*args)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_encode_gives_unit_rows_of_the_hidden_size(encoder: SentenceEncoder) -> None:
    vectors = encoder.encode(TEXTS, batch_size=4, progress=False)
    assert vectors.shape == (len(TEXTS), 16) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert encoder.encode([], batch_size=4, progress=False).shape == (0, 16)


def test_rows_follow_the_input_order_although_batches_are_sorted_by_length(encoder: SentenceEncoder) -> None:
    together = encoder.encode(TEXTS, batch_size=2, progress=False)
    alone = np.concatenate([encoder.encode([text], batch_size=2, progress=False) for text in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_padding_does_not_change_an_embedding(encoder: SentenceEncoder) -> None:
    alone = encoder.encode([SHORT], batch_size=8, progress=False)[0]
    beside_long = encoder.encode([LONG, SHORT], batch_size=8, progress=False)[1]
    np.testing.assert_allclose(alone, beside_long, atol=1e-5)


def test_truncation_keeps_at_most_sequence_length_tokens(encoder: SentenceEncoder) -> None:
    rows = encoder.token_ids([LONG, SHORT.upper()])
    assert len(rows[0]) == 32 and rows[0][-1] == encoder.tokenizer.sep_token_id
    assert rows[1].tolist() == encoder.token_ids([SHORT])[0].tolist()  # lower-cased


@pytest.fixture(scope="module")
def windowed(tiny_preset: Path) -> SentenceEncoder:
    return SentenceEncoder.load(str(tiny_preset), None, 32, long_texts="windows")


def test_windows_split_a_long_text_into_equal_rows_that_fit(windowed: SentenceEncoder) -> None:
    whole = windowed._pieces([LONG])[0]
    rows, owners = windowed.windows([SHORT, LONG, ""])
    long_rows = [row for row, owner in zip(rows, owners, strict=True) if owner == 1]
    assert len(long_rows) == -(-len(whole) // 30) > 1 and owners.tolist() == [0] + [1] * len(long_rows) + [2]
    assert all(len(row) <= 32 and row[0] == windowed._cls and row[-1] == windowed._sep for row in long_rows)
    assert max(map(len, long_rows)) - min(map(len, long_rows)) <= 1  # equal lengths: no short tail
    assert np.concatenate([row[1:-1] for row in long_rows]).tolist() == whole.tolist()  # every token, in order, once


def test_windows_stop_at_max_windows(windowed: SentenceEncoder) -> None:
    huge = " ".join([LONG] * 40)
    rows, owners = windowed.windows([huge])
    assert len(rows) == windowed.max_windows == sentence_encoder.MAX_WINDOWS and set(owners.tolist()) == {0}
    assert all(len(row) == 32 for row in rows)  # the first MAX_WINDOWS full windows' worth of tokens
    kept = windowed._pieces([huge])[0][: 30 * len(rows)]
    assert np.concatenate([row[1:-1] for row in rows]).tolist() == kept.tolist()


def test_windows_embed_a_long_text_as_the_mean_of_its_windows(
    windowed: SentenceEncoder, encoder: SentenceEncoder
) -> None:
    rows, _ = windowed.windows([LONG])
    parts = []
    for row in rows:
        ids, mask = windowed._padded([row])
        parts.append(windowed._embed_batch(ids, mask).numpy()[0])
    expected = np.mean(parts, axis=0) / np.linalg.norm(np.mean(parts, axis=0))
    vectors = windowed.encode(TEXTS, batch_size=4, progress=False)
    np.testing.assert_allclose(vectors[TEXTS.index(LONG)], expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    cut = encoder.encode(TEXTS, batch_size=4, progress=False)
    short = [i for i, text in enumerate(TEXTS) if text != LONG]
    assert vectors[short].tobytes() == cut[short].tobytes()  # a text that fits is encoded as cut encodes it
    assert not np.allclose(vectors[TEXTS.index(LONG)], cut[TEXTS.index(LONG)], atol=1e-3)


def test_unknown_long_texts_setting(tiny_preset: Path) -> None:
    message = one_line_error(lambda: SentenceEncoder.load(str(tiny_preset), None, 32, long_texts="truncate"))
    assert "embed_text.long_texts" in message and "windows" in message


def test_same_input_gives_the_same_bytes(encoder: SentenceEncoder) -> None:
    first = encoder.encode(TEXTS * 3, batch_size=4, progress=False)
    second = encoder.encode(TEXTS * 3, batch_size=4, progress=False)
    assert first.tobytes() == second.tobytes()


def test_embed_text_writes_the_feature_directory_and_repeats_byte_for_byte(
    tiny_preset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_preset, tmp_path / "models" / "tiny")
    table = pd.DataFrame({"id": [f"m{i}" for i in range(len(TEXTS))], "split": ["train", "val", "test"] * 2})
    table["plot"] = TEXTS
    settings = embed_settings("models/tiny", batch_size=4, long_texts="windows")
    out = tmp_path / "features" / "embeddings"

    assert embed_text(table, settings, out) == {"embeddings": (len(TEXTS), 16)}
    files = {name: (out / name).read_bytes() for name in ("index.csv", "embeddings.npy", "encoder.json")}
    assert sorted(p.name for p in out.iterdir()) == sorted(files)
    assert pd.read_csv(out / "index.csv", dtype=str)[["id", "split"]].equals(table[["id", "split"]])
    state = json.loads(files["encoder.json"])
    assert state["preset"] == "models/tiny"  # as given: the same in a DVC experiment copy
    assert state["sequence_length"] == 32 and state["pooling"] == "mean" and state["normalisation"] == "l2"
    assert state["long_texts"] == "windows"
    assert set(sentence_encoder.STATE_FILES[sentence_encoder.FEATURE_SET]) == {"encoder.json"}

    embed_text(table, settings, out)
    assert {name: (out / name).read_bytes() for name in files} == files

    rebuilt = load_encoder(out).encode(TEXTS, batch_size=4, progress=False)
    assert rebuilt.tobytes() == np.load(out / "embeddings.npy").tobytes()


def test_missing_preset_directory(tmp_path: Path) -> None:
    assert "preset directory not found" in one_line_error(SentenceEncoder.load, str(tmp_path / "nowhere"), None, 32)


def test_directory_without_config_is_not_a_preset(tmp_path: Path) -> None:
    assert "no config.json" in one_line_error(SentenceEncoder.load, str(tmp_path), None, 32)


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda p: (p / "config.json").write_text("{not json"), "config.json: unreadable"),
        (lambda p: (p / "model.weights.h5").unlink(), "model.weights.h5: missing"),
        (lambda p: (p / "model.weights.h5").write_bytes(b"garbage"), "malformed preset"),
        (lambda p: (p / "assets" / "tokenizer" / "vocabulary.txt").unlink(), "vocabulary.txt: missing"),
    ],
    ids=["garbled-config", "no-weights", "garbled-weights", "no-vocabulary"],
)
def test_malformed_preset(tiny_preset: Path, tmp_path: Path, damage, expected: str) -> None:
    preset = damaged_copy(tiny_preset, tmp_path)
    damage(preset)
    assert expected in one_line_error(SentenceEncoder.load, str(preset), None, 32)


def test_sha256_mismatch_names_both_hashes(tiny_preset: Path) -> None:
    actual = sha256_file(tiny_preset / "model.weights.h5")
    message = one_line_error(SentenceEncoder.load, str(tiny_preset), "0" * 64, 32)
    assert "0" * 64 in message and actual in message
    assert SentenceEncoder.load(str(tiny_preset), actual.upper(), 32).state()["weights"]["sha256"] == actual


def test_sequence_length_beyond_the_position_embeddings(tiny_preset: Path) -> None:
    assert "sequence_length" in one_line_error(SentenceEncoder.load, str(tiny_preset), None, 65)


def test_unreachable_hf_preset_says_to_download_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(*args, **kwargs):
        raise LocalEntryNotFoundError("ConnectError: [Errno -2] Name or service not known\nsecond line")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    message = one_line_error(SentenceEncoder.load, "hf://sentence-transformers/all-MiniLM-L6-v2", None, 256)
    assert "cannot be fetched" in message and "local directory" in message


def test_shared_checkpoint_puts_a_plot_nearer_its_paraphrase() -> None:
    if not (SHARED_PRESET / "config.json").is_file():
        reason = f"{SHARED_PRESET}: shared checkpoint absent"
        print(reason)
        pytest.skip(reason)
    encoder = SentenceEncoder.load(str(SHARED_PRESET), None, 256)
    plot, paraphrase, unrelated = encoder.encode(
        [
            "a retired detective is pulled back for one last case when a serial killer terrorises the city .",
            "an ex-cop comes out of retirement to hunt a murderer who is stalking the town .",
            "two sisters open a bakery in a small seaside village and fall in love with the same baker .",
        ],
        batch_size=8,
        progress=False,
    )
    assert encoder.dim == 384
    assert plot @ paraphrase > plot @ unrelated + 0.2


def test_auto_precision_follows_the_cpu_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with_bf16, without = tmp_path / "bf16", tmp_path / "plain"
    with_bf16.write_text("flags\t\t: fpu sse avx2 avx512f avx512_bf16\n")
    without.write_text("flags\t\t: fpu sse avx2 avx512f\n")
    assert precision.cpu_has_bf16(with_bf16) and not precision.cpu_has_bf16(without)
    assert not precision.cpu_has_bf16(tmp_path / "absent")
    assert precision.resolve_precision("float32") == "float32"
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    assert precision.resolve_precision("auto") == "float32"
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    import tensorflow as tf

    expected = "float32" if tf.config.get_visible_devices("GPU") else "mixed_bfloat16"
    assert precision.resolve_precision("auto") == expected
