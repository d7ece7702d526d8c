"""embed_posters: one pretrained image-network vector per poster (EfficientNet-Lite0 on ImageNet by default).

The posters are decoded and embedded on the Dask cluster that DASK_SCHEDULER_ADDRESS names, if
any, with the same bytes as in-process (moviegenre.cluster); the timings record which engine ran them.
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
from moviegenre.features.poster_encoder import FEATURE_SET, PosterEncoderSettings, embed_posters


def main() -> None:
    started = time.perf_counter()  # the whole stage, the model's build and load included
    settings = load_settings(PosterEncoderSettings, "embed_posters")
    runtime, seed = load_settings(RuntimeSettings, "runtime"), load_seed()
    table, _ = load_prepared(PATHS.prepared)
    with cluster.engine() as engine:  # first: a cluster that cannot be reached is refused before TensorFlow loads
        tensorflow_setup.configure(runtime, seed)
        if engine is not None:
            engine.prepare_workers(tensorflow_setup.configure, runtime, seed)
        shapes = embed_posters(table, settings, PATHS.features(FEATURE_SET), engine)
        ran_on = cluster.describe(engine)
    seconds = time.perf_counter() - started
    posters = shapes["embeddings"][0]
    write_json(
        PATHS.timings / "embed_posters.json",
        {"seconds": round(seconds, 1), "posters_per_s": round(posters / seconds, 1), "machine": machine(),
         "engine": ran_on},
    )  # fmt: skip


if __name__ == "__main__":
    stage.run(main)
