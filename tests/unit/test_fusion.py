"""The fusion branch on tiny generated data: one network over posters and plots.

It reads two feature sets, so besides its own outputs these tests pin what the Branch
interface gained for it: rows aligned on movie id (val and test in every branch's order),
a spec with per-set fingerprints and per-part input shapes, and prediction that scores it
only for movies with both a poster and a plot.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.builders import CPU, PATHS

from moviegenre.branches.base import NEEDS, InputParts
from moviegenre.branches.fusion import MERGE_LAYERS, FusionNet, fusion_model
from moviegenre.branches.registry import NAMES, branch_class, load_branch
from moviegenre.branches.training import train_branch
from moviegenre.config.params import load_settings
from moviegenre.core.errors import MovieGenreError
from moviegenre.data.table import load_prepared
from moviegenre.features.sets import MODALITY, sets_fingerprint
from moviegenre.features.store import INDEX, load_array, load_index, write_arrays
from moviegenre.predict.predictor import branches_used, seen_rows

FUSION = {"method": "concat", "image_input": "pixels", "text_input": "counts", "epochs": 1, "batch_size": 16,
          "learning_rate": 0.001, "weight_decay": 0.0001, "lr_patience": 1, "dropout": 0.2, "patience": 1, "units": 8,
          "conv_filters": 4, "downsample": 2, "augment": True}  # fmt: skip
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _fake_embeddings(dim: int = 6) -> None:
    """An embeddings feature set like embed_text's (all movies, table order) without the encoder."""
    table, _ = load_prepared(PATHS.prepared)
    directory = PATHS.features("embeddings")
    directory.mkdir(parents=True)
    table[["id", "split"]].to_csv(directory / INDEX, index=False)
    vectors = np.random.default_rng(0).normal(size=(len(table), dim)).astype(np.float32)
    write_arrays(directory, {"embeddings": vectors / np.linalg.norm(vectors, axis=1, keepdims=True)})
    (directory / "encoder.json").write_text('{"preset": "fake"}')


def _train(settings: dict) -> tuple[FusionNet, dict]:
    branch = FusionNet(FUSION | settings, 0)
    return branch, train_branch(branch, PATHS, CPU)


@pytest.mark.parametrize(
    ("method", "text_input"),
    [("concat", "counts"), ("add", "counts"), ("multiply", "counts"), ("max", "counts"), ("concat", "embeddings")],
)
def test_each_merge_trains_and_writes_outputs(featurized: Path, method: str, text_input: str) -> None:
    import keras

    if text_input == "embeddings":
        _fake_embeddings()
    _, metrics = _train({"method": method, "text_input": text_input})
    table, genres = load_prepared(PATHS.prepared)
    assert Path("models/fusion/model.keras").stat().st_size > 0

    # the val and test movies of every other branch, in the same order
    predictions = pd.read_parquet("data/predictions/fusion.parquet")
    scored = table["split"].isin(["val", "test"])
    assert predictions["id"].tolist() == table.loc[scored, "id"].tolist()
    assert predictions["split"].tolist() == table.loc[scored, "split"].tolist()
    for feature_set in ("images", "text"):
        index = load_index(PATHS.features(feature_set))
        assert predictions["id"].tolist() == index.loc[index["split"].isin(["val", "test"]), "id"].tolist()
    values = predictions[genres].to_numpy()
    assert ((values >= 0) & (values <= 1)).all()

    written = json.loads(Path("metrics/fusion.json").read_text())
    assert written == metrics and set(written) == {"test", "val", "epochs"}
    assert written["test"]["n_movies"] == int((table["split"] == "test").sum())
    assert Path("dvclive/fusion/metrics.json").is_file()

    # the spec names both sets, with each set's fingerprint and each input's row shape
    spec = json.loads(Path("models/fusion/spec.json").read_text())
    plot_set, plot_array = {"counts": ("text", "counts"), "embeddings": ("embeddings", "embeddings")}[text_input]
    assert spec["feature_set"] == "images" and spec["arrays"] == ["images/rgb", f"{plot_set}/{plot_array}"]
    assert spec["features_fingerprint"] == sets_fingerprint({"images": ["rgb"], plot_set: [plot_array]}, PATHS.features)
    assert set(spec["features_fingerprint"]) == {"images", plot_set}
    plot_width = load_array(PATHS.features(plot_set), plot_array).shape[1]
    assert spec["input_shape"] == {"poster": [48, 32, 3], "plot": [plot_width]}

    # the merge is the method's, on two towers of equal width
    loaded = load_branch(Path("models/fusion"))
    merge = loaded.model.get_layer("merge")
    assert type(merge) is getattr(keras.layers, MERGE_LAYERS[method])
    widths = [tuple(t.shape)[-1] for t in merge.input]
    assert widths == [FUSION["units"]] * 2
    assert tuple(merge.output.shape)[-1] == FUSION["units"] * (2 if method == "concat" else 1)

    # reloaded, it predicts what the stage stored
    images = load_index(PATHS.features("images"))
    rows = np.flatnonzero(images["split"].isin(["val", "test"]).to_numpy())
    arrays = {
        "images/rgb": load_array(PATHS.features("images"), "rgb"),
        f"{plot_set}/{plot_array}": _aligned(plot_set, plot_array, images["id"]),
    }
    np.testing.assert_allclose(loaded.predict_proba(loaded.inputs(arrays)[rows]), values, atol=1e-6)


def _aligned(feature_set: str, array: str, ids: pd.Series) -> object:
    index = load_index(PATHS.features(feature_set))
    return load_array(PATHS.features(feature_set), array)[pd.Index(index["id"]).get_indexer(ids)]


def test_predictor_scores_fusion_only_with_poster_and_plot(featurized: Path) -> None:
    """A plot-only movie gets a NaN fusion row; a movie with both gets what the stage stored."""
    from moviegenre.ensemble.model import Combiner, EnsembleModel
    from moviegenre.predict.predictor import Predictor

    _train({})
    table, genres = load_prepared(PATHS.prepared)
    EnsembleModel("weighted", genres, [Combiner(["fusion"], [0.5] * len(genres), weights={"fusion": 1.0})]).save(
        PATHS.model("ensemble")
    )
    movie = table[table["split"] == "test"].iloc[0]
    assert Predictor(PATHS, ("plot",)).branches == {}  # a plot-only movie does not load it
    scores = Predictor(PATHS).predict([movie["poster"], None], [movie["plot"], movie["plot"]])
    assert np.isnan(scores["fusion"][1]).all() and not np.isnan(scores["fusion"][0]).any()
    stored = pd.read_parquet("data/predictions/fusion.parquet").set_index("id").loc[movie["id"], genres]
    np.testing.assert_allclose(scores["fusion"][0], stored.to_numpy(dtype=float), atol=1e-5)
    assert branches_used(scores, 0) == ["fusion"] and branches_used(scores, 1) == []


def test_refitted_plot_features_are_refused(featurized: Path) -> None:
    _train({})
    counts_state = PATHS.features("text") / "counts.json"
    counts_state.write_text(counts_state.read_text() + " ")
    loaded = load_branch(Path("models/fusion"))
    arrays = {"images/rgb": load_array(PATHS.features("images"), "rgb")[:3],
              "text/counts": load_array(PATHS.features("text"), "counts")[:3]}  # fmt: skip
    with pytest.raises(
        MovieGenreError, match=r"data/features/poster/images \+ data/features/plot/text now gives .* text "
    ):
        loaded.check_features(Path("models/fusion"), arrays, sets_fingerprint(loaded.feature_sets(), PATHS.features))


def test_model_builds_for_either_plot_input() -> None:
    for text_dim in (384, 500):
        settings = FusionNet(FUSION | {"method": "max"}, 0).settings
        model = fusion_model((48, 32, 3), text_dim, 5, settings, seed=0)
        assert {t.name for t in model.inputs} == {"poster", "plot"}
        assert model.get_layer("plot_embedding").kernel.shape == (text_dim, FUSION["units"])
        assert model.output.shape[-1] == 5 and model.output.dtype == "float32"


def test_interface_for_two_feature_sets() -> None:
    branch = FusionNet(FUSION | {"text_input": "embeddings"}, 0)
    assert branch.sources() == {"images/rgb": ("images", "rgb"), "embeddings/embeddings": ("embeddings", "embeddings")}
    assert branch.feature_sets() == {"images": ("rgb",), "embeddings": ("embeddings",)}
    parts = InputParts({"poster": np.arange(12).reshape(4, 3), "plot": np.arange(8).reshape(4, 2)})
    picked = parts[np.array([3, 1])]
    assert picked.shape == (2,) and picked.parts["plot"].tolist() == [[6, 7], [2, 3]]
    with pytest.raises(ValueError, match="same rows"):
        InputParts({"poster": np.zeros((2, 1)), "plot": np.zeros((3, 1))})


def test_a_branch_needs_the_inputs_of_the_sets_it_reads() -> None:
    """Prediction picks a branch's movies by its modality and featurizes each set from its input."""
    for name in NAMES:
        cls = branch_class(name)
        branch = cls(load_settings(cls.Settings, name, PROJECT_ROOT / "params.yaml"), 0)
        assert {MODALITY[s] for s in branch.feature_sets()} == set(NEEDS[cls.modality]), name
    posters, plots = ["a.jpg", None, "c.jpg", None], ["x", "y", None, None]
    assert seen_rows("poster", posters, plots).tolist() == [0, 2]
    assert seen_rows("plot", posters, plots).tolist() == [0, 1]
    assert seen_rows("both", posters, plots).tolist() == [0]
