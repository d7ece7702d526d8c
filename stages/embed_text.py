"""embed_text: one pretrained sentence-encoder vector per plot (KerasHub, all-MiniLM-L6-v2 by default)."""

import time

from moviegenre.config.params import load_seed, load_settings
from moviegenre.config.runtime import RuntimeSettings
from moviegenre.config.sections import EmbedTextSettings
from moviegenre.core import stage
from moviegenre.core.files import write_json
from moviegenre.core.machine import machine
from moviegenre.core.paths import PATHS
from moviegenre.core.runtime import tensorflow_setup
from moviegenre.data.table import load_prepared
from moviegenre.features.sentence_encoder import FEATURE_SET, embed_text


def main() -> None:
    settings = load_settings(EmbedTextSettings, "embed_text")
    tensorflow_setup.configure(load_settings(RuntimeSettings, "runtime"), load_seed())  # device, threads
    table, _ = load_prepared(PATHS.prepared)
    started = time.perf_counter()
    embed_text(table, settings, PATHS.features(FEATURE_SET))
    seconds = time.perf_counter() - started
    write_json(
        PATHS.timings / "embed_text.json",
        {"seconds": round(seconds, 1), "plots_per_s": round(len(table) / seconds, 1), "machine": machine()},
    )


if __name__ == "__main__":
    stage.run(main)
