"""The benchmark grid: algorithms × topologies × rounds, for each network condition.

For each condition (bandwidth, one-way latency) the driver shapes the emulated network (or,
in the fallback, sets the Communicator's per-hop delay), launches one torchrun agent per
worker namespace with `gossipgan.netem.worker`, which measures α and β and runs every cell,
and collects the workers' `result.json`. Decentralized algorithms run on every topology and
every t; centralized ones (CPOSG, CPOAdam) run once per condition with all_reduce.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from gossipgan import topology as topo
from gossipgan.errors import ConfigError
from gossipgan.netem import net
from gossipgan.netem.units import format_delay, format_rate, parse_delay, parse_rate
from gossipgan.optim import optimizer_class
from gossipgan.train.config import Config, apply_overrides, validate

log = logging.getLogger(__name__)

EMULATIONS = ("netns", "app-delay")
LABEL = {"netns": "namespaces + tbf + TUN delay router",
         "app-delay": "FALLBACK: application-level per-hop delay in DistComm, loopback, "
                      "bandwidth not limited"}
BASE_PORT = 29400
CONDITION_TIMEOUT_S = 3600


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
    peer: bool = True
    target_fid: float | None = None
    overrides: list[str] = field(default_factory=list)

    def config(self) -> Config:
        """The run config every cell shares (the cell sets algo, topology and t)."""
        cfg = Config()
        cfg.game.width = 16          # tiny DCGAN on 8x8 digits: 21k parameters, 85 KB
        cfg.optim.lr = 1e-3
        cfg.run.iters = self.iters
        cfg.run.log_every = cfg.run.eval_every = log_every(self.iters)
        cfg.run.eval_batch = 128
        cfg.run.quality_samples = 512
        cfg.run.sample_every = cfg.run.checkpoint_every = 10 * self.iters
        cfg.topology.workers = self.workers
        apply_overrides(cfg, self.overrides)
        cfg.run.iters = self.iters
        validate(cfg)
        return cfg

    def conditions(self) -> list[tuple[float | None, float]]:
        """(bits per second or None = unshaped, one-way seconds), bandwidth-major."""
        delays = [parse_delay(d) for d in self.latencies]
        if self.emulation == "app-delay":
            return [(None, d) for d in delays]
        return [(parse_rate(b), d) for b in self.bandwidths for d in delays]

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
            c["name"] = f"{c['algo']}-{c['topology']}-t{c['rounds']}"
        return out

    def validate(self) -> None:
        if self.emulation not in EMULATIONS:
            raise ConfigError(f"unknown emulation {self.emulation!r}; "
                              f"known: {', '.join(EMULATIONS)}")
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
        if not self.latencies or (self.emulation == "netns" and not self.bandwidths):
            raise ConfigError("the grid needs at least one latency and one bandwidth")
        if self.emulation == "netns" and not net.is_root():
            raise ConfigError("gossipgan bench network needs root for network namespaces and tc; "
                              "without root run the fallback: gossipgan bench network "
                              "--app-delay (application-level per-hop delay, loopback, "
                              "no bandwidth limit)")
        self.conditions()  # parses every bandwidth and latency
        self.config()


def log_every(iters: int) -> int:
    """Evaluate (losses, ||T||^2, cls_fid) five times per cell, between timed steps."""
    return max(1, iters // 5)


def model_floats(cfg: Config) -> int:
    """Parameters of the game's joint vector x = (θ_G, θ_D): what one message carries."""
    from gossipgan.games import build_game

    return sum(v.numel() for v in build_game(cfg, 1).init_params(cfg.run.seed).values())


def condition_label(rate_bps: float | None, delay_s: float, emulation: str) -> str:
    bw = "loopback" if emulation == "app-delay" else format_rate(rate_bps)
    return f"{bw}_{format_delay(delay_s)}".replace("/", "")


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _wait(procs: list[subprocess.Popen], log_path: Path, stop) -> None:
    """Wait for every launched process; on a failure stop the rest and raise."""
    deadline = time.monotonic() + CONDITION_TIMEOUT_S
    while True:
        codes = [p.poll() for p in procs]
        if any(c not in (None, 0) for c in codes):
            stop()
            raise RuntimeError(f"a benchmark worker failed (exit {codes}); log {log_path}:\n"
                               + _tail(log_path))
        if all(c == 0 for c in codes):
            return
        if time.monotonic() > deadline:
            stop()
            raise RuntimeError(f"benchmark workers still running after {CONDITION_TIMEOUT_S} s; "
                               f"log {log_path}")
        time.sleep(0.2)


def _env() -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", LOGLEVEL="WARNING")
    return env


def launch_netns(network: net.Network, spec_path: Path, port: int) -> None:
    """One torchrun agent per worker namespace; gloo bound to the namespace's eth0."""
    n = network.n_workers
    env = {**_env(), "GLOO_SOCKET_IFNAME": "eth0"}
    log_path = spec_path.parent / "workers.log"
    procs = []
    with log_path.open("w") as log_file:
        for i in range(n):
            argv = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(n),
                    "--nproc-per-node", "1", "--node-rank", str(i), "--master-addr",
                    net.worker_addr(0), "--master-port", str(port), "-m",
                    "gossipgan.netem.worker", str(spec_path)]
            procs.append(network.popen(i, argv, env=env, stdout=log_file,
                                       stderr=subprocess.STDOUT))
        try:
            _wait(procs, log_path, lambda: [net._stop(p) for p in procs])
        finally:
            for p in procs:
                net._stop(p)
            network.forget_finished()


def launch_local(n: int, spec_path: Path, port: int) -> None:
    """The fallback: one torchrun on loopback; the delay is DistComm's, per hop."""
    log_path = spec_path.parent / "workers.log"
    argv = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node",
            str(n), "--master-addr", "127.0.0.1", "--master-port", str(port), "-m",
            "gossipgan.netem.worker", str(spec_path)]
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(argv, env=_env(), stdout=log_file, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            _wait([proc], log_path, lambda: net._stop(proc))
        finally:
            net._stop(proc)


def run_condition(grid: Grid, network: net.Network | None, rate: float | None, delay: float,
                  out: Path, index: int, n_floats: int) -> dict:
    label = condition_label(rate, delay, grid.emulation)
    folder = out / "conditions" / label
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").unlink(missing_ok=True)
    spec = {"emulation": grid.emulation, "rate_bps": rate, "delay_s": delay,
            "config": grid.config().to_dict(), "cells": grid.cells(), "peer": grid.peer,
            "n_floats": n_floats, "label": label}
    spec_path = folder / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=1))
    port = BASE_PORT + index % 500
    if network is not None:
        network.shape(rate, delay)
        launch_netns(network, spec_path, port)
    else:
        launch_local(grid.workers, spec_path, port)
    result = json.loads((folder / "result.json").read_text())
    result.update(label=label, rate_bps=rate, delay_s=delay, emulation=grid.emulation)
    return result


def run_grid(grid: Grid, out: Path, on_result=None) -> list[dict]:
    """Every condition of the grid; `on_result(result)` after each (for incremental output)."""
    grid.validate()
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    n_floats = model_floats(grid.config())
    (out / "grid.json").write_text(json.dumps({**asdict(grid), "n_floats": n_floats,
                                               "emulation_label": LABEL[grid.emulation]},
                                              indent=1))
    results = []
    conditions = grid.conditions()
    if grid.emulation == "netns":
        with net.Network(grid.workers) as network:
            for i, (rate, delay) in enumerate(conditions):
                results.append(run_condition(grid, network, rate, delay, out, i, n_floats))
                if on_result:
                    on_result(results[-1])
    else:
        for i, (rate, delay) in enumerate(conditions):
            results.append(run_condition(grid, None, rate, delay, out, i, n_floats))
            if on_result:
                on_result(results[-1])
    return results
