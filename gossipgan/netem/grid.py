"""The benchmark grid: algorithms × topologies × rounds, for each network condition.

For each condition (bandwidth, one-way latency) the driver shapes the emulated network (or,
in the fallback, sets the Communicator's per-hop delay), launches one torchrun agent per
worker namespace with `gossipgan.netem.worker` (launch.py), which measures α and β and runs
every cell, and collects the workers' `result.json`. Decentralized algorithms run on every
topology and every t; centralized ones (CPOSG, CPOAdam) run once per condition with
all_reduce.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from gossipgan import topology as topo
from gossipgan.comm.compressors import consensus_step_for
from gossipgan.errors import ConfigError
from gossipgan.netem import net
from gossipgan.netem.launch import start_workers, wait_for, wait_until
from gossipgan.netem.namespaces import stop_process
from gossipgan.netem.units import format_delay, format_rate, parse_delay, parse_rate
from gossipgan.optim import optimizer_class
from gossipgan.train.config import Config
from gossipgan.train.config_io import parse_overrides

log = logging.getLogger(__name__)

EMULATIONS = ("netns", "app-delay")
LABEL = {"netns": "namespaces + {shaper} + TUN delay router",
         "app-delay": "FALLBACK: application-level per-hop delay in DistComm, loopback, "
                      "bandwidth not limited"}


@dataclass
class Grid:
    workers: int = 8
    bandwidths: list[str] = field(default_factory=lambda: ["1gbit", "100mbit"])
    latencies: list[str] = field(default_factory=lambda: ["0ms", "5ms", "20ms"])
    algos: list[str] = field(default_factory=lambda: ["dposg", "dpoadam", "cposg", "cpoadam"])
    topologies: list[str] = field(default_factory=lambda: ["ring", "exponential",
                                                            "one_peer_exponential"])
    rounds: list[int] = field(default_factory=lambda: [1, 2])
    iters: int = 30
    emulation: str = "netns"
    shaper: str = "tbf"
    peer: bool = True
    target_fid: float | None = None
    overrides: list[str] = field(default_factory=list)
    # compressed gossip cells (issue 17): each compression x compressed algo x topology, t=1
    compression: list[str] = field(default_factory=lambda: ["topk:0.05", "qsgd:4"])
    compressed_algos: list[str] = field(default_factory=lambda: ["dpoadam"])
    compressed_topologies: list[str] = field(default_factory=lambda: ["ring"])
    consensus_step: float | None = None  # None: each compressor's default
    # what users run today (netem/ddp.py); only where the emulated network carries it
    ddp: list[str] = field(default_factory=lambda: ["ddp-adam", "ddp-adam-fp16"])

    def config(self) -> Config:
        """The run config every cell shares (the cell sets algo, topology and t)."""
        every = log_every(self.iters)
        # the project's digits GAN (MLP, WGAN-GP): 87k parameters, 348 kB per message
        values = {"run.log_every": every, "run.eval_every": every, "run.eval_batch": 128,
                  "run.quality_samples": 512, "topology.workers": self.workers,
                  **parse_overrides(self.overrides)}
        values["run.iters"] = self.iters  # the grid's own; an override may not change it
        return Config().with_values(values)

    def label(self) -> str:
        """What emulated the network, for every output (the fallback says so)."""
        return LABEL[self.emulation].format(shaper=self.shaper)

    def conditions(self) -> list[tuple[float | None, float]]:
        """(bits per second or None = unshaped, one-way seconds): fastest rate first, then
        increasing latency (each condition runs on fresh workers, see run_grid)."""
        delays = sorted({parse_delay(d) for d in self.latencies})
        if self.emulation == "app-delay":
            return [(None, d) for d in delays]
        rates = sorted({parse_rate(b) for b in self.bandwidths}, reverse=True)
        return [(r, d) for r in rates for d in delays]

    def cells(self) -> list[dict]:
        out = []
        for algo in self.algos:
            if optimizer_class(algo).centralized:
                out.append({"algo": algo, "topology": "all_reduce", "rounds": 1})
                continue
            for name in self.topologies:
                for t in self.rounds:
                    out.append({"algo": algo, "topology": name, "rounds": t})
        for c in out:
            c["compression"] = "none"
        # only for algorithms and topologies the grid runs (`--algos dposg` means dposg only)
        for spec in self.compression:
            for algo in [a for a in self.compressed_algos if a in self.algos]:
                for name in [t for t in self.compressed_topologies if t in self.topologies]:
                    gamma = consensus_step_for(spec, self.consensus_step)
                    out.append({"algo": algo, "topology": name, "rounds": 1,
                                "compression": spec, "consensus_step": gamma})
        for c in out:
            c["name"] = f"{c['algo']}-{c['topology']}-t{c['rounds']}" + (
                "" if c["compression"] == "none" else "-" + c["compression"].replace(":", ""))
        return out

    def baselines(self) -> list[str]:
        """The DDP rows: not under the no-root fallback, whose per-hop delay is DistComm's
        and so would not slow DDP's all-reduces down."""
        return [] if self.emulation == "app-delay" else list(self.ddp)

    def validate(self) -> None:
        if self.emulation not in EMULATIONS:
            raise ConfigError(f"unknown emulation {self.emulation!r}; "
                              f"known: {', '.join(EMULATIONS)}")
        if self.shaper not in net.SHAPERS:
            raise ConfigError(f"unknown shaper {self.shaper!r}; known: {', '.join(net.SHAPERS)}")
        limit = net.memory_limit_workers()
        if not 2 <= self.workers <= limit:
            raise ConfigError(f"the network benchmark needs 2..{limit} workers on this machine "
                              f"(about {net.WORKER_MEMORY >> 20} MB each), got {self.workers}")
        if self.iters < 1:
            raise ConfigError(f"iterations must be >= 1, got {self.iters}")
        for t in self.rounds:
            if t < 1:
                raise ConfigError(f"rounds t must be >= 1, got {t}")
        if not self.algos:
            raise ConfigError("the grid needs at least one algorithm")
        for algo in self.algos:
            optimizer_class(algo)
        if any(not optimizer_class(a).centralized for a in self.algos):
            if not self.topologies:
                raise ConfigError("decentralized algorithms need at least one topology")
            for name in self.topologies:
                if name in ("file", "all_reduce"):
                    known = ", ".join(t for t in topo.TOPOLOGIES if t != "file")
                    raise ConfigError(f"topology {name!r} is not part of the benchmark grid; "
                                      f"known: {known}")
                topo.build(name, self.workers)
        from gossipgan.comm.compressors import parse_compression
        from gossipgan.netem.ddp import HOOKS

        for spec in self.compression:
            if parse_compression(spec) is None:
                raise ConfigError("--compression lists compressors for the compressed cells; "
                                  "'none' is every other cell (give --compression '' for none)")
        for algo in self.compressed_algos if self.compression else []:
            if optimizer_class(algo).centralized:
                raise ConfigError(f"compressed cells need a decentralized algorithm, not {algo}")
        for name in self.compressed_topologies if self.compression else []:
            if topo.build(name, self.workers).period != 1:
                raise ConfigError(f"compressed gossip needs a static graph, not {name!r}")
        if self.consensus_step is not None and not 0 < self.consensus_step <= 1:
            raise ConfigError(f"--consensus-step: consensus_step must be in (0, 1], got "
                              f"{self.consensus_step}")
        for name in self.ddp:
            if name not in HOOKS:
                raise ConfigError(f"unknown DDP baseline {name!r}; known: {', '.join(HOOKS)}")
        if not self.latencies or (self.emulation == "netns" and not self.bandwidths):
            raise ConfigError("the grid needs at least one latency and one bandwidth")
        self.conditions()  # parses every bandwidth and latency
        self.config()
        if self.emulation == "netns" and not net.is_root():
            raise ConfigError("gossipgan bench network needs root for network namespaces and tc; "
                              "without root run the fallback: gossipgan bench network "
                              "--app-delay (application-level per-hop delay, loopback, "
                              "no bandwidth limit)")


def log_every(iters: int) -> int:
    """Evaluate (losses, ||T||^2, cls_fid) five times per cell, between timed steps."""
    return max(1, iters // 5)


def param_sizes(cfg: Config) -> list[int]:
    """Elements of each parameter tensor of the game's x = (θ_G, θ_D), in order (compression
    works per tensor, so the cells' stand-in optimizers need the real split)."""
    from gossipgan.train.build import build_game

    return [v.numel() for v in build_game(cfg, 1).init_params(cfg.run.seed).values()]


def model_floats(cfg: Config) -> int:
    """Parameters of the game's joint vector x = (θ_G, θ_D): what one message carries."""
    return sum(param_sizes(cfg))


def condition_label(rate_bps: float | None, delay_s: float, emulation: str) -> str:
    bw = "loopback" if emulation == "app-delay" else format_rate(rate_bps)
    return f"{bw}_{format_delay(delay_s)}".replace("/", "")


def result_path(out: Path, label: str) -> Path:
    return out / "conditions" / label / "result.json"


def run_grid(grid: Grid, out: Path, on_result=None) -> list[dict]:
    """Every condition of the grid; `on_result(result)` after each (for incremental output).

    Each condition gets fresh workers, hence fresh connections: with one set of workers for
    the whole grid, TCP state carried over from earlier conditions (another MTU, another
    latency) made cells slower than the same condition run alone (BENCHMARKS.md, "Network
    conditions"). The driver shapes the network, writes `go-<i>`
    (worker 0 waits for it), starts the workers and waits for result.json and their exit."""
    grid.validate()
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    n_floats = model_floats(grid.config())
    conditions = [{"rate_bps": rate, "delay_s": delay,
                   "label": condition_label(rate, delay, grid.emulation)}
                  for rate, delay in grid.conditions()]
    (out / "grid.json").write_text(json.dumps({**asdict(grid), "n_floats": n_floats,
                                               "emulation_label": grid.label()}, indent=1))
    for i, cond in enumerate(conditions):
        (out / f"go-{i}").unlink(missing_ok=True)
        result_path(out, cond["label"]).unlink(missing_ok=True)
    spec = {"emulation": grid.emulation, "config": grid.config().to_dict(),
            "cells": grid.cells(), "peer": grid.peer, "n_floats": n_floats,
            "param_sizes": param_sizes(grid.config()), "ddp": grid.baselines(),
            "conditions": conditions, "out": str(out)}
    spec_path = out / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=1))
    log_path = out / "workers.log"
    results = []
    with contextlib.ExitStack() as stack:
        network = (stack.enter_context(net.Network(grid.workers))
                   if grid.emulation == "netns" else None)
        log_file = stack.enter_context(log_path.open("w"))
        procs: list[subprocess.Popen] = []
        stack.callback(lambda: [stop_process(p) for p in procs])
        for i, cond in enumerate(conditions):
            before = {}
            if network is not None:
                network.shape(cond["rate_bps"], cond["delay_s"], grid.shaper)
                before = network.counters()
            (out / f"go-{i}").write_text(json.dumps(cond))
            procs[:] = start_workers(grid, network, spec_path, i, log_file)
            path = result_path(out, cond["label"])
            wait_for(path, procs, log_path)
            wait_until(procs, log_path, lambda: all(p.poll() == 0 for p in procs))
            result = json.loads(path.read_text())
            result.update(cond, emulation=grid.emulation, emulation_label=grid.label())
            if network is not None:
                after = network.counters()
                result["network"] = {k: after[k] - before[k] for k in after}
            results.append(result)
            if on_result:
                on_result(result)
    return results
