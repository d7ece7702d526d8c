"""train_text_ml: RandomForest on TF-IDF of plots (plot-only movies train too)."""

from moviegenre import params, stage
from moviegenre.classical import run_forest_branch
from moviegenre.feature_index import load_index
from moviegenre.text_features import TEXT_DIR, TFIDF, load_matrix


def main() -> None:
    settings = params.load_section("text_ml")
    features = load_matrix(TEXT_DIR, TFIDF)
    index = load_index(TEXT_DIR)
    run_forest_branch("text_ml", "random_forest", features, index, settings, params.load_section("seed"))


if __name__ == "__main__":
    stage.run(main)
