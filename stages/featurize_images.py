"""featurize_images: decode posters once, write uint8 arrays, PCA (fitted on train) and colour stats."""

from moviegenre import params, stage
from moviegenre.dataset import load_prepared
from moviegenre.image_features import featurize_images


def main() -> None:
    table, _ = load_prepared()
    shapes = featurize_images(table, params.load_section("images"), params.load_section("seed"))
    stage.log.info("featurize_images: %s", shapes)


if __name__ == "__main__":
    stage.run(main)
