"""The one list of branches. Everything that loops over branches (the train stages, the
ensemble's params, ``moviegenre predict``, the report) reads it from here."""

from __future__ import annotations

from pathlib import Path

from moviegenre.branches.base import Branch, read_spec
from moviegenre.branches.forests import ImageForest, TextForest
from moviegenre.branches.fusion import FusionNet
from moviegenre.branches.image_cnn import ImageCnn
from moviegenre.branches.text_encoder import TextEncoderHead
from moviegenre.branches.text_nn import TextNet
from moviegenre.core.errors import MovieGenreError

BRANCHES: dict[str, type[Branch]] = {
    cls.name: cls for cls in (ImageForest, TextForest, ImageCnn, TextNet, TextEncoderHead, FusionNet)
}
NAMES: tuple[str, ...] = tuple(BRANCHES)


def branch_class(name: str) -> type[Branch]:
    if name not in BRANCHES:
        raise MovieGenreError(f"unknown branch {name!r} (known: {', '.join(NAMES)})")
    return BRANCHES[name]


def load_branch(directory: Path) -> Branch:
    """A trained branch from its model directory, whichever branch it is."""
    return branch_class(read_spec(directory).branch).load(directory)
