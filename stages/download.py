"""download: fetch data.source, verify its sha256, unpack it safely, write data/raw/."""

from moviegenre.config.params import load_settings
from moviegenre.core import stage
from moviegenre.core.paths import PATHS
from moviegenre.download.ingest import build_raw
from moviegenre.download.settings import DataSettings


def main() -> None:
    summary = build_raw(load_settings(DataSettings, "data"), PATHS.raw, PATHS.cache)
    stage.log.info(
        "download: %s layout, %d movies, %d posters, %d poster failures",
        summary.layout, summary.movies, summary.posters, summary.poster_failures,
    )  # fmt: skip


if __name__ == "__main__":
    stage.run(main)
