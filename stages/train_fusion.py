"""train_fusion: one network over poster pixels and plot features, on the movies with both."""

from moviegenre.branches.fusion import FusionNet
from moviegenre.branches.keras_training import fit_keras
from moviegenre.branches.training import run_train_stage
from moviegenre.core import stage
from moviegenre.core.paths import PATHS

if __name__ == "__main__":
    stage.run(lambda: run_train_stage(FusionNet, PATHS, train_keras=fit_keras))
