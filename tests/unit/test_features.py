"""Feature files: shapes, dtypes, row order, and nothing fitted on val or test."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from helpers.builders import IMAGES, TEXT
from sklearn.decomposition import PCA

from moviegenre.core.errors import MovieGenreError
from moviegenre.data.posters import load_rgb, to_grey
from moviegenre.data.table import load_prepared
from moviegenre.features import images
from moviegenre.features.colour import N_COLOUR_FEATURES
from moviegenre.features.images import PosterFeaturizer, featurize_images
from moviegenre.features.store import NpyWriter, load_index
from moviegenre.features.text import PlotFeaturizer, featurize_text
from moviegenre.features.tokenizer import Tokenizer


def test_image_arrays_follow_the_prepared_table(prepared_project: Path) -> None:
    table, _ = load_prepared(Path("data/prepared"))
    featurize_images(table, IMAGES, seed=0, out_dir=Path("feat"))
    with_poster = table[table["poster"].notna()]
    index = load_index(Path("feat"))
    assert index["id"].tolist() == with_poster["id"].tolist()
    assert index["split"].tolist() == with_poster["split"].tolist()

    n = len(with_poster)
    grey = np.load("feat/grey.npy", mmap_mode="r")
    rgb = np.load("feat/rgb.npy", mmap_mode="r")
    assert (grey.shape, grey.dtype) == ((n, 48, 32), np.uint8)
    assert (rgb.shape, rgb.dtype) == ((n, 48, 32, 3), np.uint8)
    assert np.load("feat/pca.npy").shape == (n, 8)
    colour = np.load("feat/colour.npy")
    assert colour.shape == (n, N_COLOUR_FEATURES) and np.isfinite(colour).all()
    np.testing.assert_array_equal(grey, to_grey(np.asarray(rgb)))  # grey is the luma of rgb
    first = load_rgb(with_poster["poster"].iloc[0], 48, 32)
    np.testing.assert_array_equal(rgb[0], first)  # row 0 is the table's first poster
    # prediction's path (the saved featurizer on the poster files) gives the stage's arrays
    again = PosterFeaturizer.load(Path("feat")).transform(with_poster["poster"].tolist(), workers=1, progress=False)
    for name in ("grey", "rgb", "colour"):
        np.testing.assert_array_equal(again[name], np.load(f"feat/{name}.npy"))
    np.testing.assert_array_equal(again["pca"], np.load("feat/pca.npy"))  # the same products on the same arrays


def test_streamed_stage_writes_the_bytes_of_a_fit_on_arrays_held_whole(prepared_project: Path) -> None:
    """The stage streams RGB to disk and fits PCA on a float copy it centres in place; the PCA
    (its saved arrays, byte for byte) and its projections are those of the plain in-memory fit,
    projected by scikit-learn's own ``transform``."""
    table, _ = load_prepared(Path("data/prepared"))
    shapes = featurize_images(table, IMAGES, seed=0, out_dir=Path("feat"))
    grey = np.load("feat/grey.npy")
    assert shapes == {
        name: np.load(f"feat/{name}.npy", mmap_mode="r").shape for name in ("rgb", "grey", "pca", "colour")
    }
    train = (load_index(Path("feat"))["split"] == "train").to_numpy()
    flat = grey.reshape(len(grey), -1).astype(np.float64) / 255.0
    held = PCA(n_components=8, svd_solver="randomized", random_state=0).fit(flat[train])
    for name in ("components_", "mean_"):  # rounded, so that no BLAS kernel's last bits reach the bytes
        setattr(held, name, np.round(getattr(held, name), images.PCA_DECIMALS))
    np.save("components.npy", held.components_)
    np.save("mean.npy", held.mean_)
    assert Path("components.npy").read_bytes() == Path("feat", images.PCA_COMPONENTS).read_bytes()
    assert Path("mean.npy").read_bytes() == Path("feat", images.PCA_MEAN).read_bytes()
    projected = np.round(held.transform(flat), images.FEATURE_DECIMALS).astype(np.float32)
    np.testing.assert_array_equal(np.load("feat/pca.npy"), projected)


def test_the_pca_writes_the_same_bytes_under_another_blas_kernel(prepared_project: Path) -> None:
    """OpenBLAS's Haswell kernel sums in another order than the one it picks for this CPU: the
    rounded float64 PCA must not show it."""
    import subprocess
    import sys

    script = (
        "from pathlib import Path\n"
        "from moviegenre.data.table import load_prepared\n"
        "from moviegenre.features.images import ImagesSettings\n"
        "from moviegenre.features.images import featurize_images\n"
        "import sys\n"
        f"featurize_images(load_prepared(Path('data/prepared'))[0], {IMAGES!r}, seed=0, out_dir=Path(sys.argv[1]))\n"
    )
    for out, kernel in (("default", None), ("haswell", "Haswell")):
        env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"} | (
            {"OPENBLAS_CORETYPE": kernel} if kernel else {}
        )
        subprocess.run([sys.executable, "-c", script, out], env=env, check=True, capture_output=True)
    for name in (images.PCA_COMPONENTS, images.PCA_MEAN, "pca.npy"):
        assert Path("default", name).read_bytes() == Path("haswell", name).read_bytes(), name


def test_an_unreadable_poster_leaves_no_feature_directory(
    prepared_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(images, "DECODE_CHUNK", 8)
    table, _ = load_prepared(Path("data/prepared"))
    broken = table.loc[table["poster"].notna(), "poster"].iloc[-1]  # in the last chunk: rgb.npy is half written
    Path(broken).write_bytes(b"not a jpeg")
    with pytest.raises(MovieGenreError, match="not a readable image"):
        featurize_images(table, IMAGES.model_copy(update={"workers": 1}), seed=0, out_dir=Path("feat"))
    assert not Path("feat").exists() and not list(Path(".").glob(".feat.*"))


@pytest.mark.parametrize("dtype, shape", [(np.uint8, (10, 4, 3, 3)), (np.float32, (7, 5)), (np.int32, (3,))])
def test_npy_writer_writes_what_np_save_writes(tmp_path: Path, dtype: type, shape: tuple[int, ...]) -> None:
    array = np.random.default_rng(0).integers(0, 100, shape).astype(dtype)
    np.save(tmp_path / "whole.npy", array)
    with NpyWriter(tmp_path / "blocks.npy", shape, dtype) as writer:
        for start in range(0, len(array), 3):
            writer.write(array[start : start + 3])
    assert (tmp_path / "blocks.npy").read_bytes() == (tmp_path / "whole.npy").read_bytes()


def test_npy_writer_refuses_a_wrong_block_and_a_short_file(tmp_path: Path) -> None:
    writer = NpyWriter(tmp_path / "a.npy", (4, 2), np.float32)
    with pytest.raises(ValueError, match="does not fit"):
        writer.write(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="does not fit"):
        writer.write(np.zeros((2, 2), np.float64))
    writer.write(np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="does not fit"):
        writer.write(np.zeros((2, 2), np.float32))  # 5 rows of 4
    with pytest.raises(ValueError, match="3 of 4 rows written"):
        writer.close()


def test_pca_is_fitted_on_train_posters_only(prepared_project: Path) -> None:
    table, _ = load_prepared(Path("data/prepared"))
    featurize_images(table, IMAGES, seed=0, out_dir=Path("a"))
    # Replace every test poster with noise: a PCA fitted on train alone does not change.
    rng = np.random.default_rng(0)
    from PIL import Image

    for path in table.loc[(table["split"] == "test") & table["poster"].notna(), "poster"]:
        Image.fromarray(rng.integers(0, 255, (90, 60, 3), dtype=np.uint8)).save(path, format="JPEG")
    featurize_images(table, IMAGES, seed=0, out_dir=Path("b"))
    a, b = PosterFeaturizer.load(Path("a")), PosterFeaturizer.load(Path("b"))
    np.testing.assert_allclose(a.components, b.components, atol=1e-6)
    index = load_index(Path("a"))
    train = (index["split"] == "train").to_numpy()
    np.testing.assert_allclose(np.load("a/pca.npy")[train], np.load("b/pca.npy")[train], atol=1e-5)


class _Touch:
    """Unpickled, it creates ``path``: the harm a pickled file could do, made visible."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.path,))


def _saved_featurizer(directory: Path) -> PosterFeaturizer:
    grey = np.random.default_rng(0).integers(0, 256, (30, 6, 4), dtype=np.uint8)
    featurizer = PosterFeaturizer.fit(grey, components=3, seed=0)
    directory.mkdir()
    featurizer.save(directory)
    return featurizer


def test_a_saved_featurizer_loads_and_projects_as_before(tmp_path: Path) -> None:
    featurizer = _saved_featurizer(tmp_path / "feat")
    assert sorted(p.name for p in (tmp_path / "feat").iterdir()) == ["pca_components.npy", "pca_mean.npy", "size.json"]
    loaded = PosterFeaturizer.load(tmp_path / "feat")
    grey = np.random.default_rng(1).integers(0, 256, (5, 6, 4), dtype=np.uint8)
    np.testing.assert_array_equal(loaded.pca_transform(grey), featurizer.pca_transform(grey))
    assert loaded.pca_transform(grey).dtype == np.float32 and loaded.n_components == 3


@pytest.mark.parametrize("how", ["pickle", "object array"])
def test_the_fitted_pca_is_never_unpickled(tmp_path: Path, how: str) -> None:
    """A feature directory may come from a remote: a pickle in it is refused unread, under the
    old name (pca.joblib) as under the new one."""
    directory = tmp_path / "feat"
    _saved_featurizer(directory)
    marker = tmp_path / "unpickled"
    if how == "pickle":
        import pickle

        (directory / images.PCA_COMPONENTS).write_bytes(pickle.dumps(_Touch(marker)))
    else:
        np.save(directory / images.PCA_COMPONENTS, np.array([_Touch(marker)], dtype=object), allow_pickle=True)
    (directory / "pca.joblib").write_bytes((directory / images.PCA_COMPONENTS).read_bytes())
    with pytest.raises(MovieGenreError) as caught:
        PosterFeaturizer.load(directory)
    message = str(caught.value)
    assert message.startswith(f"{directory / images.PCA_COMPONENTS}: not a readable numpy array (")
    assert message.endswith("; run `dvc repro featurize_images`") and "\n" not in message
    assert not marker.exists()


@pytest.mark.parametrize(
    ("damage", "culprit", "reason"),
    [
        ("an older version's directory", images.PCA_COMPONENTS, ": not found"),
        ("float32 components", images.PCA_COMPONENTS, ": float32 (3, 24) where float64 (components, 24) belongs"),
        ("components of other posters", images.PCA_COMPONENTS, ": float64 (3, 20) where float64 (components, 24)"),
        ("no component", images.PCA_COMPONENTS, ": holds no component"),
        ("a mean too short", images.PCA_MEAN, ": float64 (23,) where float64 (24,) belongs"),
        ("a NaN in the mean", images.PCA_MEAN, ": holds a value that is not a finite number"),
        ("a size that is not one", images.SIZE, ": not a poster size"),
    ],
)
def test_a_damaged_pca_state_is_one_line_naming_its_file(
    tmp_path: Path, damage: str, culprit: str, reason: str
) -> None:
    directory = tmp_path / "feat"
    featurizer = _saved_featurizer(directory)
    components, mean = featurizer.components, featurizer.mean
    if damage == "an older version's directory":
        (directory / images.PCA_COMPONENTS).unlink()
        (directory / images.PCA_MEAN).unlink()
        (directory / "pca.joblib").write_bytes(b"a pickled PCA")
    elif damage == "float32 components":
        np.save(directory / culprit, components.astype(np.float32))
    elif damage == "components of other posters":
        np.save(directory / culprit, components[:, :20])
    elif damage == "no component":
        np.save(directory / culprit, components[:0])
    elif damage == "a mean too short":
        np.save(directory / culprit, mean[:-1])
    elif damage == "a NaN in the mean":
        np.save(directory / culprit, np.where(np.arange(len(mean)) == 3, np.nan, mean))
    else:
        (directory / culprit).write_text('{"height": 6, "width": -4}')
    with pytest.raises(MovieGenreError) as caught:
        PosterFeaturizer.load(directory)
    message = str(caught.value)
    assert message.startswith(f"{directory / culprit}{reason}"), message
    assert message.endswith("run `dvc repro featurize_images`") and "\n" not in message


def test_text_features_shapes_sparsity_and_order(prepared_project: Path) -> None:
    table, _ = load_prepared(Path("data/prepared"))
    shapes = featurize_text(table, TEXT, out_dir=Path("text"))
    index = load_index(Path("text"))
    assert index["id"].tolist() == table["id"].tolist()
    tfidf, counts = sp.load_npz("text/tfidf.npz"), sp.load_npz("text/counts.npz")
    assert sp.issparse(tfidf) and tfidf.format == "csr" and tfidf.dtype == np.float32
    assert counts.shape == (len(table), shapes["counts"][1]) and counts.shape[1] <= 500
    sequences = np.load("text/sequences.npy")
    assert sequences.shape == (len(table), 12) and sequences.dtype == np.int32
    assert sequences.max() < 100
    tokenizer = Tokenizer.load(Path("text/tokenizer.json"))
    np.testing.assert_array_equal(tokenizer.transform(table["plot"]), sequences)
    # the saved featurizer (vectorisers rebuilt from JSON) transforms exactly as the stage did
    again = PlotFeaturizer.load(Path("text")).transform(table["plot"].tolist())
    assert (again["tfidf"] != tfidf).nnz == 0 and (again["counts"] != counts).nnz == 0
    np.testing.assert_array_equal(again["sequences"], sequences)


def test_vectorisers_ignore_val_and_test_plots(prepared_project: Path) -> None:
    table, _ = load_prepared(Path("data/prepared"))
    featurize_text(table, TEXT, out_dir=Path("before"))
    changed = table.copy()
    is_test = changed["split"] == "test"
    changed.loc[is_test, "plot"] = "zzyzx quokka " * 5  # words no training plot has
    featurize_text(changed, TEXT, out_dir=Path("after"))
    before, after = PlotFeaturizer.load(Path("before")), PlotFeaturizer.load(Path("after"))
    for name in ("tfidf", "counts"):
        assert getattr(before, name).vocabulary_ == getattr(after, name).vocabulary_
        assert "quokka" not in getattr(after, name).vocabulary_
    assert Tokenizer.load(Path("before/tokenizer.json")).words == Tokenizer.load(Path("after/tokenizer.json")).words
    # the changed test plots are all out-of-vocabulary
    after_ids = np.load("after/sequences.npy")[is_test.to_numpy()]
    assert set(np.unique(after_ids)) <= {0, 1}


def test_tokenizer_pads_and_truncates_at_the_end() -> None:
    tokenizer = Tokenizer(vocab_size=5, length=4).fit(["a a a b b c", "a b"])
    assert tokenizer.words == ["a", "b", "c"]
    ids = tokenizer.transform(["a b", "c a b a b", "unknown"])
    np.testing.assert_array_equal(ids, [[2, 3, 0, 0], [4, 2, 3, 2], [1, 0, 0, 0]])
