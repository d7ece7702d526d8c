"""The real pipeline, shrunk: settings small enough that a whole `dvc repro` of a project copy on
generated movies is quick, shared by every end-to-end module that runs DVC on the project itself."""

from __future__ import annotations

import re
from pathlib import Path

from helpers.project import copy_project, dvc, git

# The stages a Dask cluster runs: tests/e2e/test_on_a_dask_cluster.py forces them on one and holds every
# output to the committed bytes, so the in-process forced run of tests/e2e/test_pipeline.py leaves them out.
STAGES_ON_A_CLUSTER = ("embed_text", "embed_posters", "train@image_ml", "train@text_ml")

# Small but real settings: every stage runs, on generated data, with a learnable signal.
TINY = {
    "prepare": {"min_genre_count": 2},
    "images": {"height": 48, "width": 32, "pca_components": 8, "workers": 2},
    "text": {
        "tfidf": {"ngram_max": 1, "min_df": 1, "max_df": 1.0, "max_features": 2000, "sublinear_tf": True,
                  "stop_words": "english"},
        "counts": {"ngram_max": 1, "min_df": 1, "max_features": 2000, "stop_words": "english"},
        "sequences": {"vocab_size": 200, "length": 24},
    },
    "image_ml": {"n_estimators": 30},
    "text_ml": {"n_estimators": 30},
    "image_dl": {"epochs": 2, "batch_size": 16},
    "runtime": {"deterministic": True},
    "embed_text": {"sha256": None, "sequence_length": 32, "batch_size": 16, "precision": "float32"},
    "text_encoder": {"epochs": 2, "hidden_units": 16},
    "embed_posters": {"input_size": 64, "batch_size": 16, "precision": "float32"},
    "image_encoder": {"epochs": 2},
    "encoder_fusion": {"epochs": 2},
    "text_dl": {"epochs": 2, "batch_size": 16, "hidden_units": 32},
    "word2vec": {"epochs": 2},
    "fusion": {"epochs": 2, "batch_size": 16, "units": 16, "conv_filters": 8},
}  # fmt: skip


def copy_tiny_pipeline(root: Path) -> tuple[Path, Path]:
    """``root/repo``, a committed project copy with TINY settings whose data source is 120 generated
    movies (``root/tiny.tar.gz``) and whose sentence encoder is a one-layer BERT under ``root``; not
    reproduced yet. Returns the repo and the archive."""
    from helpers.synthetic import make_mmimdb_archive, write_tiny_bert_preset

    archive = make_mmimdb_archive(root / "tiny.tar.gz", n=120, seed=3)
    preset = write_tiny_bert_preset(root / "tiny-bert")
    tiny = TINY | {"embed_text": TINY["embed_text"] | {"preset": str(preset)}}
    return copy_project(root / "repo", {"data": {"source": str(archive), "sha256": None}, **tiny}), archive


def ran(output: str) -> set[str]:
    """The stages a `dvc repro` or `dvc exp run` ran, by its output."""
    return set(re.findall(r"Running stage '([^']+)'", output))


def stage_names(repo: Path) -> list[str]:
    """Every stage as DVC names it (``train@<branch>`` for each branch of the registry)."""
    return dvc(repo, "stage", "list", "--names-only").stdout.split()


def reset_to_commit(repo: Path) -> None:
    """Back to the committed run: params and the lock from git, every output from the DVC cache."""
    git(repo, "reset", "-q", "--hard")
    dvc(repo, "checkout", "-q", "--force")
