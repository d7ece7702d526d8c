"""train_image_ml: ExtraTrees on poster features (PCA of greyscale, plus colour statistics)."""

from moviegenre.branches.forests import ImageForest
from moviegenre.branches.training import run_train_stage
from moviegenre.core import stage
from moviegenre.core.paths import PATHS

if __name__ == "__main__":
    stage.run(lambda: run_train_stage(ImageForest, PATHS))
