"""embed_text: one pretrained sentence-encoder vector per plot (KerasHub, all-MiniLM-L6-v2 by default).

The forward passes run on the Dask cluster that DASK_SCHEDULER_ADDRESS names, if any, with the
same bytes as in-process (moviegenre.cluster); the timings record which engine ran them.
"""

import time

from moviegenre import cluster
from moviegenre.config.params import load_seed, load_settings
from moviegenre.config.runtime import RuntimeSettings
from moviegenre.core import stage
from moviegenre.core.files import write_json
from moviegenre.core.machine import machine
from moviegenre.core.paths import PATHS
from moviegenre.core.runtime import tensorflow_setup
from moviegenre.data.table import load_prepared
from moviegenre.features.sentence_encoder import FEATURE_SET, EmbedTextSettings, embed_text


def main() -> None:
    settings = load_settings(EmbedTextSettings, "embed_text")
    runtime, seed = load_settings(RuntimeSettings, "runtime"), load_seed()
    table, _ = load_prepared(PATHS.prepared)
    with cluster.engine() as engine:  # first: a cluster that cannot be reached is refused before TensorFlow loads
        tensorflow_setup.configure(runtime, seed)  # device, threads
        started = time.perf_counter()
        if engine is not None:
            engine.prepare_workers(tensorflow_setup.configure, runtime, seed)
        embed_text(table, settings, PATHS.features(FEATURE_SET), engine)
        ran_on = cluster.describe(engine)
    seconds = time.perf_counter() - started
    write_json(
        PATHS.timings / "embed_text.json",
        {"seconds": round(seconds, 1), "plots_per_s": round(len(table) / seconds, 1), "machine": machine(),
         "engine": ran_on},
    )  # fmt: skip


if __name__ == "__main__":
    stage.run(main)
