"""The five sections of a run configuration, one frozen dataclass per component.

Every field carries a one-line help text (`_f`). A section checks its own fields when it is
built (type, range, allowed names, the combinations within it; every float finite), so a built
section is valid; `gossipgan.train.config` joins them into the `Config` of a whole run.
"""

from __future__ import annotations

import os
import typing
from dataclasses import dataclass
from typing import Any

from gossipgan.errors import ConfigError
from gossipgan.optim import ALGORITHMS
from gossipgan.train.config_fields import (
    MAX_COUNT,
    MAX_SIZE,
    MAX_WORKERS,
    _check_device,
    _f,
    _Section,
)


@dataclass(frozen=True)
class GameConfig(_Section):
    section: typing.ClassVar[str] = "game"
    name: str = _f("gan", "the min-max problem: gan, or an analytic game (bilinear, quadratic, "
                   "minty)")
    dim: int = _f(10, "analytic games: dimension of each player")
    samples_per_worker: int = _f(256, "analytic games: samples in each worker's shard")
    heterogeneity: float = _f(0.0, "analytic games: how much the workers' shards differ "
                              "(0 = IID)")
    noise: float = _f(0.1, "analytic games: per-sample noise of the operator")
    loss: str = _f("wgan-gp", "GAN objective: nsgan, hinge, wgan-gp")
    model: str = _f("mlp", "GAN models: mlp, dcgan, resnet")
    latent_dim: int = _f(32, "GAN: dimension of the generator's latent input")
    width: int | None = _f(None, "GAN: model width (hidden units or base filters; null = the "
                           "model's default)")
    gp_weight: float = _f(10.0, "WGAN-GP: weight of the gradient penalty")

    def check(self) -> None:
        from gossipgan.games.analytic import ANALYTIC_GAMES
        from gossipgan.games.gan import LOSSES
        from gossipgan.models import MODELS

        self._choice("name", ("gan", *ANALYTIC_GAMES))
        self._choice("loss", LOSSES)
        self._choice("model", MODELS)
        self._at_least(1, "dim", "samples_per_worker", "latent_dim", "width")
        self._at_least(0, "heterogeneity", "noise", "gp_weight")
        self._at_most(MAX_SIZE, "the models are built whole in memory", "width", "latent_dim")
        self._at_most(MAX_COUNT, "it is held in memory per worker", "dim", "samples_per_worker")


@dataclass(frozen=True)
class DataConfig(_Section):
    section: typing.ClassVar[str] = "data"
    dataset: str = _f("digits", "GAN data: digits, ring8, grid25, mnist5k, fashion-mnist, or "
                      "files: mnist-idx, cifar10, imagefolder, npz (README: data layouts)")
    root: str | None = _f(None, "folder (or .npz file) of a file dataset")
    image_size: int | None = _f(None, "resize images to this side (null = as stored)")
    shard: str = _f("iid", "how data is split over workers: iid or dirichlet (non-IID)")
    alpha: float = _f(1.0, "Dirichlet concentration for shard=dirichlet (smaller = more "
                      "skewed)")

    def check(self) -> None:
        from gossipgan.data import DATASETS, SCHEMES
        from gossipgan.data.checks import MAX_IMAGE_SIZE

        self._choice("dataset", DATASETS)
        self._choice("shard", SCHEMES)
        self._at_least(1, "image_size")
        if self.image_size is not None and self.image_size > MAX_IMAGE_SIZE:
            raise ConfigError(f"data.image_size must be at most {MAX_IMAGE_SIZE}, got "
                              f"{self.image_size}")
        if not self.alpha > 0:
            raise ConfigError(f"data.alpha (the non-IID concentration) must be > 0, "
                              f"got {self.alpha}")


# config key -> the builder option it sets (gossipgan.topology.options_of checks which apply)
TOPOLOGY_OPTIONS = {"self_weight": "self_weight", "p": "p", "graph_seed": "seed",
                    "edges": "path"}


@dataclass(frozen=True)
class TopologyConfig(_Section):
    section: typing.ClassVar[str] = "topology"
    name: str = _f("ring", "gossip graph (gossipgan topology --help lists them)")
    workers: int | None = _f(8, "number of workers N (null: the edge-list file's node count)")
    self_weight: float | None = _f(None, "ring: weight a worker gives itself (null = 1/3)")
    p: float | None = _f(None, "erdos_renyi: edge probability (null = 0.3)")
    graph_seed: int | None = _f(None, "erdos_renyi: seed of the random graph (null = 0)")
    edges: str | None = _f(None, "file: edge-list file, one 'i j' pair per line")

    def check(self) -> None:
        from gossipgan.topology import TOPOLOGIES, options_of

        self._choice("name", TOPOLOGIES)
        self._at_least(1, "workers")
        self._at_most(MAX_WORKERS, "mixing matrices are dense N x N", "workers")
        self._at_least(0, "graph_seed")
        allowed = options_of(self.name)
        for key, option in TOPOLOGY_OPTIONS.items():
            if getattr(self, key) is not None and option not in allowed:
                takes = ", ".join(f"topology.{k}" for k, o in TOPOLOGY_OPTIONS.items()
                                  if o in allowed) or "no options"
                raise ConfigError(f"topology.{key} does not apply to topology {self.name!r} "
                                  f"(it takes {takes})")
        if self.workers is None and self.name.replace("-", "_") != "file":
            raise ConfigError(f"topology {self.name!r} needs topology.workers (--workers N)")
        if self.name == "file" and self.edges is None:
            raise ConfigError("topology 'file' needs an edge-list file: --edges FILE "
                              "(topology.edges)")

    def options(self) -> dict[str, Any]:
        """The builder's keyword arguments: the options this config sets."""
        return {o: getattr(self, k) for k, o in TOPOLOGY_OPTIONS.items()
                if getattr(self, k) is not None}

    def build(self):
        """The `gossipgan.topology.Topology` this section describes."""
        from gossipgan.topology import build

        return build(self.name, self.workers, **self.options())


@dataclass(frozen=True)
class OptimConfig(_Section):
    section: typing.ClassVar[str] = "optim"
    algo: str = _f("dpoadam", f"algorithm: {', '.join(ALGORITHMS)}")
    lr: float = _f(1e-3, "step size of both players")
    lr_g: float | None = _f(None, "generator / min player's step size (null = lr)")
    lr_d: float | None = _f(None, "discriminator / max player's step size (null = lr)")
    rounds: int = _f(1, "gossip rounds t per iteration")
    beta1: float = _f(0.5, "Adam methods: first-moment decay")
    beta2: float = _f(0.999, "Adam methods: second-moment decay")
    eps: float = _f(1e-8, "Adam methods: denominator epsilon")
    moments: str = _f("local", "decentralized Adam methods: local moments, or mixed "
                      "(gossiped with x)")
    compression: str = _f("none", "decentralized methods: compressed gossip with error "
                          "feedback (CHOCO): none, topk:F, randk:F (fraction F), qsgd:B (B bits)")
    consensus_step: float | None = _f(None, "compressed gossip: consensus step gamma in "
                                      "(0, 1] (null = 1 for qsgd:8, qsgd:4, 0.1 for topk, "
                                      "randk, qsgd:2)")

    def check(self) -> None:
        self._choice("algo", ALGORITHMS)
        self._choice("moments", ("local", "mixed"))
        for name in ("lr", "lr_g", "lr_d"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"optim.{name} must be > 0, got {value}")
        self._at_least(1, "rounds")
        self._at_least(0, "eps")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"optim.{name} must be in [0, 1), got {getattr(self, name)}")
        cls = ALGORITHMS[self.algo]
        if self.moments == "mixed" and (cls.direction != "adam" or cls.centralized):
            raise ConfigError(f"optim.moments='mixed' applies only to decentralized Adam "
                              f"methods, not {self.algo}")
        from gossipgan.comm.compressors import parse_compression

        compressor = parse_compression(self.compression)
        gamma = self.consensus_step
        if gamma is not None and not 0 < gamma <= 1:
            raise ConfigError(f"optim.consensus_step must be in (0, 1], got {gamma}")
        if compressor is None and gamma not in (None, 1):
            raise ConfigError(f"optim.consensus_step={self.consensus_step} applies only with "
                              "optim.compression (it is 'none')")
        if compressor is not None and cls.centralized:
            raise ConfigError(f"optim.compression applies only to decentralized methods, not "
                              f"{self.algo} (it all-reduces gradients)")

    def gamma(self) -> float:
        """The consensus step the run uses: consensus_step, or the compressor's default."""
        from gossipgan.comm.compressors import consensus_step_for

        return consensus_step_for(self.compression, self.consensus_step)


@dataclass(frozen=True)
class RunConfig(_Section):
    section: typing.ClassVar[str] = "run"
    iters: int = _f(3000, "training iterations")
    batch: int = _f(64, "minibatch per worker")
    seed: int = _f(0, "seed of the initialisation, data order and noise")
    log_every: int = _f(20, "log losses, consensus and traffic every so many iterations")
    eval_every: int = _f(500, "||T(x_bar)||^2 on a large batch (and quality) every so many "
                         "iterations")
    eval_batch: int = _f(1024, "samples of the large batch for ||T(x_bar)||^2")
    quality_every: int | None = _f(None, "sample quality every so many iterations, a multiple "
                                   "of eval_every (null = at every eval, 0 = off)")
    quality_samples: int | None = _f(None, "generated samples per quality measurement (null = "
                                     "2000 images / 2500 points)")
    classifier: str | None = _f(None, "classifier file for cls_* (null = the shipped one)")
    sample_every: int = _f(1000, "sample grids of x_bar and worker 0 every so many iterations")
    checkpoint_every: int = _f(500, "checkpoint every so many iterations")
    backend: str = _f("sim", "sim (all workers in one process) or dist (torchrun, one "
                      "process per worker)")
    dist_backend: str = _f("auto", "dist: auto, gloo or nccl")
    delay_ms: float = _f(0.0, "dist: application-level delay per gossip hop (latency "
                         "emulation without root)")
    comm_timeout_s: float = _f(300.0, "dist: seconds a rank waits for a peer before the run "
                               "stops (a stalled or unreachable peer)")
    vectorize: str = _f("auto", "sim: operator of all workers by vmap, loop, or auto (a "
                        "size rule)")
    mixing: str = _f("auto", "sim: gossip as a dense product, sparse neighbour reads, or auto")
    threads: int = _f(1, "torch threads of this process while it trains")
    device: str = _f("cpu", "torch device, e.g. cpu, cuda, cuda:1 (dist with nccl: this "
                     "rank's GPU)")
    ema: float | None = _f(None, "EMA decay of the generator, e.g. 0.999, evaluated beside "
                           "x_bar as *_ema (null = off)")
    ema_per_worker: bool = _f(False, "also draw worker 0's own EMA and log the workers' "
                              "EMA consensus_ema (needs run.ema)")
    tensorboard: bool = _f(False, "also log scalars and sample grids to RUN_DIR/tb/ (needs "
                           "the tensorboard extra)")

    def check(self) -> None:
        from gossipgan.sim import VECTORIZE

        self._at_least(1, "iters", "batch", "log_every", "eval_every", "eval_batch",
                       "sample_every", "checkpoint_every", "threads", "quality_samples")
        self._at_most(MAX_COUNT, "a batch is held in memory at once", "batch", "eval_batch",
                      "quality_samples")
        self._at_least(0, "seed", "delay_ms")
        if not self.comm_timeout_s > 0:
            raise ConfigError(f"run.comm_timeout_s must be > 0, got {self.comm_timeout_s}")
        if self.seed >= 2**63:
            raise ConfigError(f"run.seed must be below 2**63, got {self.seed}")
        cores = os.cpu_count() or 1
        if self.threads > 4 * cores:
            raise ConfigError(f"run.threads={self.threads} is more than 4x this machine's "
                              f"{cores} cores; use 1..{cores}")
        if self.quality_every is not None and (self.quality_every < 0
                                               or self.quality_every % self.eval_every):
            raise ConfigError(f"run.quality_every must be 0 (off) or a multiple of "
                              f"run.eval_every ({self.eval_every}), got {self.quality_every}")
        self._choice("backend", ("sim", "dist"))
        self._choice("dist_backend", ("auto", "gloo", "nccl"))
        self._choice("vectorize", VECTORIZE)
        self._choice("mixing", ("auto", "dense", "sparse"))
        _check_device(self.device)
        if self.ema is not None and not 0 <= self.ema < 1:
            raise ConfigError(f"run.ema (the generator's EMA decay) must be in [0, 1) or null "
                              f"(off), got {self.ema}")
        if self.ema_per_worker and self.ema is None:
            raise ConfigError("run.ema_per_worker needs run.ema (a decay, e.g. 0.999)")


__all__ = ["DataConfig", "GameConfig", "OptimConfig", "RunConfig", "TopologyConfig"]
