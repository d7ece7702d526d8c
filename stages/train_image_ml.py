"""train_image_ml: ExtraTrees on poster features (PCA of greyscale, plus colour statistics)."""

from moviegenre import params, stage
from moviegenre.classical import run_forest_branch
from moviegenre.feature_index import load_index
from moviegenre.image_features import IMAGES_DIR, image_feature_matrix


def main() -> None:
    settings = params.load_section("image_ml")
    features = image_feature_matrix(IMAGES_DIR, settings["features"])
    index = load_index(IMAGES_DIR)
    run_forest_branch("image_ml", "extra_trees", features, index, settings, params.load_section("seed"))


if __name__ == "__main__":
    stage.run(main)
