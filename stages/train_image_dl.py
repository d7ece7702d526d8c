"""train_image_dl: a CNN on the posters' uint8 arrays."""

from moviegenre.branches.image_cnn import ImageCnn
from moviegenre.branches.keras_training import fit_keras
from moviegenre.branches.training import run_train_stage
from moviegenre.core import stage
from moviegenre.core.paths import PATHS

if __name__ == "__main__":
    stage.run(lambda: run_train_stage(ImageCnn, PATHS, train_keras=fit_keras))
