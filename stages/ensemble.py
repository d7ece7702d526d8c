"""ensemble: combine the branches' probabilities; write metrics, summary, per-genre AUC, ROC data and figures."""

from moviegenre.config.params import load_seed, load_settings
from moviegenre.core import stage
from moviegenre.core.paths import PATHS
from moviegenre.ensemble.run import run_ensemble
from moviegenre.ensemble.settings import EnsembleSettings


def main() -> None:
    run_ensemble(load_settings(EnsembleSettings, "ensemble"), load_seed(), PATHS)


if __name__ == "__main__":
    stage.run(main)
