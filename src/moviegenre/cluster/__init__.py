"""The heavy, data-parallel work on a Dask distributed cluster, when Dask's own setting names one.

DVC orchestrates but does not distribute, so a stage that wants more than one machine hands
its rows to a cluster itself. Which engine runs is never a param: ``DASK_SCHEDULER_ADDRESS``
(or ``scheduler-address`` in Dask's config file, or ``predict --dataset --scheduler``) names a
scheduler, and without one the work runs in-process as it always did. Nothing here starts a
cluster: a run that names one that cannot be reached stops with one line, it never falls back.

The bytes do not depend on the engine. Rows go in fixed shards (``shards.shard_rows``: a
multiple of the batch size, whatever the number of workers), the model is loaded once per
worker (``shards.WorkerModel``) rather than shipped with each task, results come back in shard
order, and only the driver writes. Before any work, every worker must run the driver's package
versions and the very same moviegenre code (``versions``).
"""

from moviegenre.cluster.engine import IN_PROCESS, Engine, configured_address, describe, engine
from moviegenre.cluster.shards import Shard, batches_per_shard, in_process_map, shard_rows

__all__ = [
    "IN_PROCESS",
    "Engine",
    "Shard",
    "batches_per_shard",
    "configured_address",
    "describe",
    "engine",
    "in_process_map",
    "shard_rows",
]
