"""The arguments a GossipOptimizer's constructor checks (gossipgan.optim.gossip): the step
size, rounds and Adam constants of every parameter group (`check_hyperparameters`), and the
compression spec with its consensus step, turned into the CHOCO layer (`compression_layer`).
Each mistake is a one-line ConfigError.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gossipgan.comm.base import Communicator
from gossipgan.comm.compress import CompressedGossip
from gossipgan.comm.compressors import consensus_step_for, parse_compression
from gossipgan.errors import ConfigError

if TYPE_CHECKING:
    from gossipgan.optim.gossip import GossipOptimizer


def check_hyperparameters(lr: float, rounds: int, betas: tuple[float, float], eps: float) -> None:
    """lr > 0, rounds an integer >= 1, betas in [0, 1), eps >= 0 (the constructor checks its
    defaults, then every parameter group)."""
    if not lr > 0.0:
        raise ConfigError(f"Invalid learning rate: {lr} (must be > 0)")
    if isinstance(rounds, bool) or not (isinstance(rounds, int) and rounds >= 1):
        raise ConfigError(f"Invalid number of gossip rounds: {rounds} (must be an integer >= 1)")
    if not 0.0 <= betas[0] < 1.0:
        raise ConfigError(f"Invalid beta parameter at index 0: {betas[0]} (must be in [0, 1))")
    if not 0.0 <= betas[1] < 1.0:
        raise ConfigError(f"Invalid beta parameter at index 1: {betas[1]} (must be in [0, 1))")
    if not eps >= 0.0:
        raise ConfigError(f"Invalid epsilon value: {eps} (must be >= 0)")


def compression_layer(opt: GossipOptimizer, comm: Communicator, spec: str,
                      gamma: float | None, seed: int) -> CompressedGossip | None:
    """The CHOCO layer the spec asks for (None: plain gossip), or a one-line ConfigError.
    gamma None: the compressor's default consensus step (compressors.py)."""
    compressor = parse_compression(spec)
    if gamma is not None and not 0 < gamma <= 1:
        raise ConfigError(f"Invalid consensus_step: {gamma} (must be in (0, 1])")
    if compressor is None:
        if gamma not in (None, 1):
            raise ConfigError(f"consensus_step={gamma} applies only with compression (got "
                              "compression='none')")
        return None
    if opt.centralized:
        raise ConfigError(f"compression={spec!r} applies only to decentralized methods (the "
                          "centralized ones all-reduce gradients)")
    return CompressedGossip(comm, compressor, consensus_step_for(spec, gamma), seed)
