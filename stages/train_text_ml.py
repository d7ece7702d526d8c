"""train_text_ml: RandomForest on TF-IDF of plots (plot-only movies train too)."""

from moviegenre.branches.forests import TextForest
from moviegenre.branches.training import run_train_stage
from moviegenre.core import stage
from moviegenre.core.paths import PATHS

if __name__ == "__main__":
    stage.run(lambda: run_train_stage(TextForest, PATHS))
