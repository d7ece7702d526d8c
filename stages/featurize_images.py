"""featurize_images: decode posters once, write uint8 arrays, PCA (fitted on train) and colour stats."""

from moviegenre.config.params import load_seed, load_settings
from moviegenre.core import stage
from moviegenre.core.paths import PATHS
from moviegenre.data.table import load_prepared
from moviegenre.features.images import FEATURE_SET, ImagesSettings, featurize_images


def main() -> None:
    table, _ = load_prepared(PATHS.prepared)
    shapes = featurize_images(table, load_settings(ImagesSettings, "images"), load_seed(), PATHS.features(FEATURE_SET))
    stage.log.info("featurize_images: %s", shapes)


if __name__ == "__main__":
    stage.run(main)
