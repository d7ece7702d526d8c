"""download: fetch data.source, verify its sha256, unpack it safely, write data/raw/."""

from pathlib import Path

from moviegenre import params, stage
from moviegenre.raw import build_raw


def main() -> None:
    data = params.load_section("data")
    summary = build_raw(data, Path("data/raw"))
    stage.log.info(
        "download: %s layout, %d movies, %d posters, %d poster failures",
        summary.layout,
        summary.movies,
        summary.posters,
        summary.poster_failures,
    )


if __name__ == "__main__":
    stage.run(main)
