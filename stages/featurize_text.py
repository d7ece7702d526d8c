"""featurize_text: TF-IDF, counts and token ids of every plot, fitted on the text training movies."""

from moviegenre import params, stage
from moviegenre.dataset import load_prepared
from moviegenre.text_features import featurize_text


def main() -> None:
    table, _ = load_prepared()
    featurize_text(table, params.load_section("text"))


if __name__ == "__main__":
    stage.run(main)
