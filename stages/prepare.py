"""prepare: validate every movie, normalise genres, split, write data/prepared/ and metrics/data.json."""

from moviegenre.config.params import load_seed, load_settings
from moviegenre.core import stage
from moviegenre.core.paths import PATHS
from moviegenre.data.prepare import PrepareSettings, prepare
from moviegenre.download.settings import DataSettings


def main() -> None:
    data = load_settings(DataSettings, "data")
    settings = load_settings(PrepareSettings, "prepare")
    metrics = prepare(
        PATHS.raw,
        PATHS.prepared,
        PATHS.metrics / "data.json",
        fractions=settings.split.model_dump(),
        min_genre_count=settings.min_genre_count,
        seed=load_seed(),
        limit=data.limit,
    )
    stage.log.info(
        "prepare: %d movies in, %d out (%d with poster); split %s; %d genres kept",
        metrics["movies_in"], metrics["movies_out"], metrics["with_poster"], metrics["split"],
        metrics["genres"]["kept"],
    )  # fmt: skip


if __name__ == "__main__":
    stage.run(main)
