"""Gossip graphs as checked, read-only data (DESIGN.md §2).

    schedule   `Topology`: a static or periodic time-varying gossip schedule, its mixing
               matrices validated doubly stochastic and read-only, and its spectral facts
               (rho, spectral gap, rounds to consensus)
    builders   one function per named graph (ring, torus, hypercube, exponential, ...) and
               `build(name, n_workers, **options)` by name
    graphs     adjacency plumbing: connectivity, Metropolis-Hastings weights, edge-list files

Convention: one gossip round is x^i <- sum_j W[i, j] x^j. Everything here is numpy; nothing
imports torch.distributed.
"""

from gossipgan.topology import graphs
from gossipgan.topology.builders import (
    TOPOLOGIES,
    build,
    complete,
    erdos_renyi,
    exponential,
    from_edge_list,
    from_networkx,
    hypercube,
    one_peer_exponential,
    options_of,
    ring,
    star,
    symmetric_exponential,
    torus,
)
from gossipgan.topology.schedule import Topology, exact_average_rounds, validate

__all__ = [
    "TOPOLOGIES", "Topology", "build", "complete", "erdos_renyi", "exact_average_rounds",
    "exponential", "from_edge_list", "from_networkx", "graphs", "hypercube",
    "one_peer_exponential", "options_of", "ring", "star", "symmetric_exponential", "torus",
    "validate",
]
