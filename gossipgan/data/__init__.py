"""Datasets (built-in and on-disk loaders) and per-worker sharding (IID, Dirichlet non-IID).

    ds = load_dataset("digits", split="train")            # Dataset: x [n, 1, 8, 8] in [-1, 1]
    shards = shard(ds, n_workers=8, scheme="dirichlet", alpha=0.1, seed=0)
    samplers = make_samplers(shards, batch_size=32, seed=0)
    xb = ds.x[samplers[3].next_batch()]                   # worker 3's next minibatch
"""

from gossipgan.data.mixtures import MIXTURES, mixture_modes, mixture_std, sample_mixture
from gossipgan.data.sharding import SCHEMES, WorkerSampler, make_samplers, shard
from gossipgan.data.sources import DATASETS, SPLITS, Dataset, load_dataset, resize_images

__all__ = [
    "DATASETS", "MIXTURES", "SCHEMES", "SPLITS", "Dataset", "WorkerSampler", "load_dataset",
    "make_samplers", "mixture_modes", "mixture_std", "resize_images", "sample_mixture", "shard",
]
