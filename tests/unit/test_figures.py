"""The ensemble's figures: the genre-set rows with their fitted thresholds, the per-genre bars'
legend and colours, and the colours the Vega templates share with them."""

from __future__ import annotations

import json

import matplotlib.colors
import numpy as np
import pandas as pd
import pytest
from helpers import PROJECT_ROOT

from moviegenre.ensemble import figures


def test_every_genre_set_row_carries_the_threshold_fitted_for_its_genre() -> None:
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    proba = np.array([[0.9, 0.2, 0.1], [0.3, 0.8, 0.2], [0.6, 0.7, 0.3], [0.1, 0.4, 0.9]])
    rows = pd.DataFrame(figures.threshold_rows(["A", "B", "None"], y, proba, [0.45, 0.55, 1.0]))
    assert set(rows["genre"]) == {"A", "B"}  # no positive, no curve
    assert rows.groupby("genre")["fitted"].unique().map(list).to_dict() == {"A": [0.45], "B": [0.55]}
    assert {tuple(sorted(row)) for row in rows.to_dict("records")} == {
        ("fitted", "genre", "measure", "threshold", "value")
    }  # one shape for every row: DVC reads a plot file's rows by the same fields
    with pytest.raises(ValueError, match="2 fitted thresholds for 3 genres"):
        figures.threshold_rows(["A", "B", "None"], y, proba, [0.45, 0.55])


def _table(branches: list[str], genres: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"genre": [f"Genre {g}" for g in range(genres)], "test_positives": np.arange(genres) + 5})
    for name in [*branches, "ensemble"]:
        table[name] = rng.uniform(0.4, 1.0, genres)
    return table


NINE = ["image_ml", "text_ml", "text_linear", "image_dl", "text_dl", "text_encoder", "image_encoder",
        "encoder_fusion", "fusion"]  # fmt: skip


@pytest.mark.parametrize("branches", [NINE, [f"branch_{i}" for i in range(20)]])
def test_the_per_genre_legend_covers_no_bar_and_every_series_has_its_own_colour(branches: list[str]) -> None:
    fig = figures.per_genre_figure(_table(branches))
    fig.canvas.draw()
    (ax,) = fig.axes
    (legend,) = fig.legends
    box, axes = legend.get_window_extent(), ax.get_window_extent()
    assert not box.overlaps(axes) and box.y1 <= axes.y0  # below the axes, not over the bars
    assert not box.overlaps(ax.xaxis.label.get_window_extent())  # nor over the axis title
    assert fig.bbox.contains(box.x0, box.y0) and fig.bbox.contains(box.x1, box.y1)  # and not cut off
    labels = [text.get_text() for text in legend.get_texts()]
    assert sorted(labels) == sorted([*branches, "ensemble"])
    colours = {label: matplotlib.colors.to_hex(patch.get_facecolor()) for label, patch in zip(
        labels, legend.legend_handles, strict=True)}  # fmt: skip
    assert len(set(colours.values())) == len(colours) and colours["ensemble"] == "#000000"
    # it reads row by row in the table's order
    where = {label: handle.get_window_extent() for label, handle in zip(labels, legend.legend_handles, strict=True)}
    assert sorted(labels, key=lambda label: (-where[label].y0, where[label].x0)) == [*branches, "ensemble"]


def test_the_vega_templates_colour_branches_and_revisions_as_the_figures_do() -> None:
    """The ROC chart and the learning-rate charts take their colours from figures.PALETTE, so a
    branch is the same colour in the PNGs and the Vega charts, and 20 series get 20 colours."""
    for name, channel in (("roc_by_branch", "branch"), ("learning_rate", "rev")):
        spec = json.loads((PROJECT_ROOT / ".dvc/plots" / f"{name}.json").read_text())
        colour = spec["encoding"]["color"]
        assert colour["field"] == channel and colour["scale"]["range"] == list(figures.PALETTE), name
    assert len(set(figures.PALETTE)) == len(figures.PALETTE) >= 21  # black, then 20 for the branches
    roc = json.loads((PROJECT_ROOT / ".dvc/plots/roc_by_branch.json").read_text())
    assert roc["encoding"]["color"]["sort"] == ["ensemble"]  # first in the domain: PALETTE's black
    assert figures.series_colours(["a", "ensemble", "b"]) == {"a": figures.PALETTE[1], "b": figures.PALETTE[2],
                                                              "ensemble": "#000000"}  # fmt: skip
