"""train_text_dl: a dense NN on plot term counts (mlp) or an LSTM on token ids (lstm)."""

from moviegenre import params, runtime, stage


def main() -> None:
    seed = params.load_section("seed")
    settings = params.load_section("text_dl")
    strategy, device = runtime.configure(params.load_section("runtime"), seed)
    from moviegenre.deep_training import train_text_branch  # TensorFlow loads after configure

    train_text_branch(settings, seed, strategy, device)


if __name__ == "__main__":
    stage.run(main)
