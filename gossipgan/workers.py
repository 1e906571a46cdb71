"""Kept for imports written before the simulator became a package: use `gossipgan.sim`."""

from gossipgan.sim.workers import VECTORIZE, Workers, worker_seed

__all__ = ["VECTORIZE", "Workers", "worker_seed"]
