"""A tiny trained project: every artifact that `moviegenre predict`, `serve` and ``Predictor`` load.

Built in-process from 90 generated movies (prepare, featurize, embed with a one-layer BERT,
five branches, the ensemble): about half a minute. Stage code is imported inside the builder,
so importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import yaml

from helpers import PROJECT_ROOT

BRANCHES = ["image_ml", "text_ml", "image_dl", "text_dl", "text_encoder"]


def tiny_settings() -> dict[str, dict]:
    """params.yaml's sections, shrunk to seconds of training."""
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    return {
        "image_ml": params["image_ml"] | {"n_estimators": 12},
        "text_ml": params["text_ml"] | {"n_estimators": 12},
        "image_dl": params["image_dl"] | {"epochs": 1, "batch_size": 16},
        "text_dl": params["text_dl"] | {"arch": "mlp", "epochs": 1, "batch_size": 16, "hidden_units": 16},
        "text_encoder": params["text_encoder"] | {"hidden_units": 0, "epochs": 2},
        "ensemble": params["ensemble"] | {"method": "val", "branches": BRANCHES},
        "runtime": params["runtime"] | {"device": "cpu", "n_jobs": 1},
    }


def build_tiny_project(root: Path) -> Path:
    """``root`` holding data/prepared, data/features, models/ and metrics/ of a trained pipeline.

    A third of the 90 movies are plot-only; the branches are ``BRANCHES``.
    """
    from helpers.builders import IMAGES, TEXT, data_settings, embed_settings
    from helpers.synthetic import make_movies, write_mmimdb_dir, write_tiny_bert_preset
    from moviegenre.branches.forests import ImageForest, TextForest
    from moviegenre.branches.image_dl import ImageCnn
    from moviegenre.branches.text_dl import TextNet
    from moviegenre.branches.text_encoder import TextEncoderHead
    from moviegenre.branches.training import train_branch
    from moviegenre.config.runtime import RuntimeSettings
    from moviegenre.core.paths import ProjectPaths
    from moviegenre.data.prepare import prepare
    from moviegenre.data.table import load_prepared
    from moviegenre.download.ingest import build_raw
    from moviegenre.ensemble.run import run_ensemble
    from moviegenre.ensemble.settings import EnsembleSettings
    from moviegenre.features.images import featurize_images
    from moviegenre.features.sentence_encoder import embed_text
    from moviegenre.features.text import featurize_text

    write_mmimdb_dir(root / "src", make_movies(90, seed=1), poster_every=1, seed=1)
    for i, poster in enumerate(sorted((root / "src" / "mmimdb" / "dataset").glob("*.jpeg"))):
        if i % 3 == 2:
            poster.unlink()  # a third of the movies are plot-only
    preset = write_tiny_bert_preset(root / "tiny-bert")
    settings = tiny_settings()
    paths = ProjectPaths(root)
    with contextlib.chdir(root):  # the prepared table's poster paths are relative to the project
        build_raw(data_settings(root / "src"), paths.raw, paths.cache)
        fractions = {"train": 0.6, "val": 0.2, "test": 0.2}
        prepare(paths.raw, paths.prepared, paths.metrics / "data.json", fractions=fractions, min_genre_count=2,
                seed=0, workers=1)  # fmt: skip
        table, _ = load_prepared(paths.prepared)
        featurize_images(table, IMAGES, seed=0, out_dir=paths.features("images"))
        featurize_text(table, TEXT, out_dir=paths.features("text"))
        embed_text(table, embed_settings(preset), paths.features("embeddings"))
        runtime = RuntimeSettings.model_validate(settings["runtime"])
        for branch in (ImageForest, TextForest, ImageCnn, TextNet, TextEncoderHead):
            train_branch(branch(settings[branch.name], 0), paths, runtime)
        run_ensemble(EnsembleSettings.model_validate(settings["ensemble"]), 0, paths)
    return root


def copy_of_tiny_project(built: Path, dest: Path) -> Path:
    """A copy of the built tiny project at ``dest``: its artifacts, prepared table and posters (their paths
    are relative to the project), reading the encoder preset where the build left it."""
    shutil.copytree(built, dest, symlinks=True)
    return dest
