"""ensemble: average the branches' probabilities; write metrics, per-genre AUC, ROC data and figures."""

from moviegenre import params, stage
from moviegenre.ensemble import run_ensemble


def main() -> None:
    run_ensemble(params.load_section("ensemble"))


if __name__ == "__main__":
    stage.run(main)
