"""featurize_text: TF-IDF, counts and token ids of every plot, fitted on the text training movies."""

from moviegenre.config.params import load_settings
from moviegenre.core import stage
from moviegenre.core.paths import PATHS
from moviegenre.data.table import load_prepared
from moviegenre.features.text import FEATURE_SET, TextSettings, featurize_text


def main() -> None:
    table, _ = load_prepared(PATHS.prepared)
    featurize_text(table, load_settings(TextSettings, "text"), PATHS.features(FEATURE_SET))


if __name__ == "__main__":
    stage.run(main)
