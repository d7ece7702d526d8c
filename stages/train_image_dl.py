"""train_image_dl: a CNN on the posters' uint8 arrays (seed network or batch-normalised GAP network)."""

from moviegenre import params, runtime, stage


def main() -> None:
    seed = params.load_section("seed")
    settings = params.load_section("image_dl")
    strategy, device = runtime.configure(params.load_section("runtime"), seed)
    from moviegenre.deep_training import train_image_branch  # TensorFlow loads after configure

    train_image_branch(settings, seed, strategy, device)


if __name__ == "__main__":
    stage.run(main)
