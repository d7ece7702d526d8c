"""train_text_encoder: a classifier head (logistic regression or a small MLP) on the plot embeddings."""

from moviegenre.branches.keras_training import fit_keras
from moviegenre.branches.text_encoder import TextEncoderHead
from moviegenre.branches.training import run_train_stage
from moviegenre.core import stage
from moviegenre.core.paths import PATHS

if __name__ == "__main__":
    stage.run(lambda: run_train_stage(TextEncoderHead, PATHS, train_keras=fit_keras))
