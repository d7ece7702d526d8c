"""The outputs documented as machine-independent are the same bytes with numpy's AVX-512 code on and off.

numpy picks its sort and its transcendental functions by the CPU's SIMD extensions; running the
same fit in a process started with ``NPY_DISABLE_CPU_FEATURES`` naming every AVX-512 feature
plays an AVX2 machine on this one (docs/reproducibility.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from moviegenre.features.text import PortableTfidfVectorizer, fit_vectoriser, portable_log

SETTINGS = {
    "tfidf": {"ngram_max": 2, "min_df": 1, "max_df": 0.9, "max_features": 150, "sublinear_tf": True,
              "stop_words": None},
    "counts": {"ngram_max": 1, "min_df": 1, "max_features": 120, "stop_words": None},
    "sequences": {"vocab_size": 100, "length": 20},  # the smallest params.yaml accepts
}  # fmt: skip
FOREST = {"n_estimators": 12, "max_depth": None, "max_features": "sqrt", "min_samples_leaf": 1, "class_weight": None}

# Featurise the plots, then fit both forests (on the TF-IDF and on fixed dense features); print a
# digest of every byte written or predicted.
SCRIPT = """
import hashlib, json, sys
from pathlib import Path
import numpy as np, pandas as pd
from moviegenre.branches.forests import ImageForest, TextForest
from moviegenre.features.text import TextSettings
from moviegenre.features.store import load_array
from moviegenre.features.text import featurize_text

table, out = pd.read_parquet(sys.argv[1]), Path(sys.argv[2])
settings, forest = TextSettings.model_validate(json.loads(sys.argv[3])), json.loads(sys.argv[4])
featurize_text(table, settings, out)
labels = np.stack([table["plot"].str.contains(w).to_numpy() for w in ("w001", "w002 w003", "w010")], 1)
digest = hashlib.sha256()
for path in sorted(out.iterdir()):
    digest.update(path.name.encode() + path.read_bytes())
dense = np.random.default_rng(0).random((len(table), 9))
for branch, x in ((TextForest(forest | {"features": "tfidf"}, 3), load_array(out, "tfidf")),
                  (ImageForest(forest | {"features": "pca"}, 3), dense)):
    flat = branch.fit_flat(x, labels.astype(np.uint8))
    for name in flat.__dataclass_fields__:
        digest.update(np.ascontiguousarray(getattr(flat, name)).tobytes())
    digest.update(flat.predict(x).tobytes())
print(digest.hexdigest())
"""


def corpus(n: int = 300, vocabulary: int = 400, seed: int = 0) -> pd.DataFrame:
    """Plots of Zipf-distributed words: many terms tie on their counts at the ``max_features`` cut."""
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i:03d}" for i in range(vocabulary)])
    weights = 1.0 / np.arange(1, vocabulary + 1)
    plots = [" ".join(rng.choice(words, size=rng.integers(20, 80), p=weights / weights.sum())) for _ in range(n)]
    split = np.where(np.arange(n) % 5 == 0, "test", "train")
    return pd.DataFrame({"id": [f"{i:04d}" for i in range(n)], "split": split, "plot": plots})


def avx512_features() -> list[str]:
    from numpy._core._multiarray_umath import __cpu_features__

    return sorted(name for name, found in __cpu_features__.items() if found and ("AVX512" in name or name == "X86_V4"))


def digest_of_a_run(table: Path, out: Path, disabled: list[str]) -> str:
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(disabled)}
    if disabled:
        env["OPENBLAS_CORETYPE"] = "Haswell"  # OpenBLAS's AVX2 kernels, as on an AVX2 machine
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(table), str(out), *(pd.io.json.ujson_dumps(s) for s in (SETTINGS, FOREST))],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_plot_features_and_forests_are_the_same_bytes_with_avx512_on_and_off(tmp_path: Path) -> None:
    disabled = avx512_features()
    if not disabled:
        pytest.skip("this CPU has no AVX-512: both runs would take the same code")
    table = tmp_path / "table.parquet"
    corpus().to_parquet(table)
    assert digest_of_a_run(table, tmp_path / "on", []) == digest_of_a_run(table, tmp_path / "off", disabled)


def test_portable_log_is_the_correctly_rounded_logarithm() -> None:
    values = np.array([[1.0, 2.0, 3.0], [7.0, 1e-300, 1.5e300]])
    logs = portable_log(values)
    assert logs.shape == values.shape and logs.dtype == np.float64
    np.testing.assert_allclose(logs, np.log(values), rtol=1e-15, atol=0)
    assert logs[0, 0] == 0.0 and logs[0, 1] == 0.6931471805599453


def test_portable_tfidf_is_scikit_learns_tfidf() -> None:
    plots = corpus(120)["plot"]
    ours = fit_vectoriser(PortableTfidfVectorizer(sublinear_tf=True, dtype=np.float32), plots)
    theirs = TfidfVectorizer(sublinear_tf=True, dtype=np.float32).fit(plots)
    assert ours.vocabulary_ == theirs.vocabulary_
    np.testing.assert_allclose(ours.idf_, theirs.idf_, rtol=1e-6)
    difference = sp.csr_matrix(ours.transform(plots) - theirs.transform(plots))
    assert abs(difference).max() < 1e-6


def test_the_max_features_cut_breaks_ties_by_term() -> None:
    plots = ["bb aa cc", "cc dd ee", "ee ff gg"]  # cc and ee twice, the rest once
    vectoriser = fit_vectoriser(PortableTfidfVectorizer(max_features=4), plots)
    assert list(vectoriser.get_feature_names_out()) == ["aa", "bb", "cc", "ee"]
