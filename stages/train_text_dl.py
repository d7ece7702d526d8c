"""train_text_dl: a dense NN on plot term counts (mlp) or an LSTM on token ids (lstm)."""

from moviegenre.branches.keras_training import fit_keras
from moviegenre.branches.text_nn import TextNet
from moviegenre.branches.training import run_train_stage
from moviegenre.core import stage
from moviegenre.core.paths import PATHS

if __name__ == "__main__":
    stage.run(lambda: run_train_stage(TextNet, PATHS, train_keras=fit_keras))
