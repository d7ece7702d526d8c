"""prepare: validate every movie, normalise genres, split, write data/prepared/ and metrics/data.json."""

from pathlib import Path

from moviegenre import params, stage
from moviegenre.dataset import prepare


def main() -> None:
    data = params.load_section("data")
    settings = params.load_section("prepare")
    metrics = prepare(
        Path("data/raw"),
        Path("data/prepared"),
        Path("metrics/data.json"),
        fractions=settings["split"],
        min_genre_count=settings["min_genre_count"],
        seed=params.load_section("seed"),
        limit=data["limit"],
    )
    stage.log.info(
        "prepare: %d movies in, %d out (%d with poster); split %s; %d genres kept",
        metrics["movies_in"],
        metrics["movies_out"],
        metrics["with_poster"],
        metrics["split"],
        metrics["genres"]["kept"],
    )


if __name__ == "__main__":
    stage.run(main)
