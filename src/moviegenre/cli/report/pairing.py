"""Both revisions' predictions lined up movie by movie, for the paired bootstrap
(``moviegenre.evaluation.paired_bootstrap``).

Pairing is only sound on the same movies and the same genres in the same order; anything else
(a missing file, another genre vocabulary, another split) falls back to the intervals, logged,
never an error.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

from moviegenre.cli.report.revisions import ENSEMBLE_PREDICTIONS, PREDICTIONS, Tree
from moviegenre.cli.report.scores import SPLITS
from moviegenre.core.errors import MovieGenreError
from moviegenre.evaluation.paired_bootstrap import paired_delta_interval

log = logging.getLogger(__name__)


def paired_intervals(
    wanted: set[tuple[str, str]], head: Tree, base: Tree, prepared: Path
) -> dict[tuple[str, str], tuple[float, float]]:
    """Paired Δ intervals for the (name, split) pairs ``wanted``, where both revisions' probability
    files score the same movies on the same genres; labels from head's prepared table (a movie's
    genres do not depend on the code)."""
    if not wanted:
        return {}
    import pandas as pd

    from moviegenre.data.table import labels_for, load_prepared

    try:
        table, genres = load_prepared(prepared)
    except MovieGenreError as exc:
        log.info("no paired bootstrap: %s", exc)
        return {}
    columns = ["id", "split", *genres]
    intervals = {}
    for name in dict.fromkeys(name for name, _ in wanted):
        raw = {side: _read_predictions(tree, name) for side, tree in (("base", base), ("head", head))}
        if raw["base"] is None or raw["head"] is None:
            log.info("%s: no paired bootstrap (predictions of %s missing)", name, "base" if raw["head"] else "head")
            continue
        frames = {side: pd.read_parquet(io.BytesIO(data)) for side, data in raw.items() if data is not None}
        if any(list(frame.columns) != columns for frame in frames.values()):
            log.info("%s: no paired bootstrap (the genre columns differ)", name)
            continue
        for split in (s for s in SPLITS if (name, s) in wanted):
            head_rows, base_rows = (frames[s][frames[s]["split"] == split].set_index("id") for s in ("head", "base"))
            if len(head_rows) == 0 or set(head_rows.index) != set(base_rows.index):
                log.info("%s %s: no paired bootstrap (not the same movies)", name, split)
                continue
            try:
                y_true = labels_for(head_rows.index, table, genres)
            except MovieGenreError as exc:
                log.info("%s %s: no paired bootstrap (%s)", name, split, exc)
                continue
            base_proba = base_rows.loc[head_rows.index, genres].to_numpy()
            interval = paired_delta_interval(y_true, base_proba, head_rows[genres].to_numpy())
            if interval is not None:
                intervals[name, split] = interval
    return intervals


def _read_predictions(tree: Tree, name: str) -> bytes | None:
    """A branch's or the ensemble's predictions; the ensemble's also where older revisions kept them."""
    candidates = [ENSEMBLE_PREDICTIONS] if name == "ensemble" else []
    for path in [*candidates, f"{PREDICTIONS}/{name}.parquet"]:
        data = tree.read(path)
        if data is not None:
            return data
    return None
