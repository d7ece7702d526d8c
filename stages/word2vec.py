"""word2vec: word vectors for text_dl's Embedding, trained on the text training plots (gensim)."""

from moviegenre.config.params import load_seed, load_settings
from moviegenre.core import stage
from moviegenre.core.paths import PATHS
from moviegenre.features.text import FEATURE_SET as TEXT
from moviegenre.features.word2vec import FEATURE_SET, Word2VecSettings, load_plots, word2vec_features


def main() -> None:
    settings, seed = load_settings(Word2VecSettings, "word2vec"), load_seed()
    word2vec_features(load_plots(PATHS.prepared), PATHS.features(TEXT), settings, seed, PATHS.features(FEATURE_SET))


if __name__ == "__main__":
    stage.run(main)
