"""The topology builders: one function per named gossip graph, and `build` by name.

Convention (DESIGN.md §2): one gossip round is x^i <- sum_j W[i, j] x^j, with W an N×N doubly
stochastic matrix whose entry W[i, j] is positive only when j == i or j is a neighbour that i
receives from. A time-varying schedule is a periodic sequence W_0..W_{P-1}; global gossip round
r uses W_{r mod P}, and t rounds starting at round s apply the product W_{s+t-1} ... W_s.

`build(name, n_workers, **options)` picks a builder by name (`TOPOLOGIES`); every builder is also
a public function. User graphs come from `from_networkx(graph)` or `from_edge_list(path)`; through
`build` an edge-list file is `build("file", n_workers_or_None, path=PATH)`.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from gossipgan.errors import ConfigError, check_choice
from gossipgan.topology import graphs
from gossipgan.topology.schedule import Topology, exact_average_rounds, validate

__all__ = [
    "TOPOLOGIES",
    "Topology",
    "build",
    "complete",
    "erdos_renyi",
    "exact_average_rounds",
    "exponential",
    "from_edge_list",
    "from_networkx",
    "hypercube",
    "one_peer_exponential",
    "options_of",
    "ring",
    "star",
    "symmetric_exponential",
    "torus",
    "validate",
]


def _make(name: str, w: np.ndarray, adj: np.ndarray, description: str = "") -> Topology:
    validate(w, adj)
    return Topology(name, (w,), description)


def _uniform(adj: np.ndarray, weight: float) -> np.ndarray:
    """`weight` on every edge and the diagonal (regular graphs of degree 1/weight - 1)."""
    return np.where(adj | np.eye(len(adj), dtype=bool), weight, 0.0)


def ring(n: int, self_weight: float = 1 / 3) -> Topology:
    """Cycle: W[i, i] = self_weight, W[i, i±1] = (1 - self_weight)/2. n == 2 is a single edge
    with all weights 1/2 (self_weight is then unused)."""
    n = graphs.check_workers("ring", n)
    if not 0 <= self_weight < 1:
        raise ConfigError(f"ring self_weight must be in [0, 1), got {self_weight}")
    if n == 2:
        return _make("ring", np.full((2, 2), 0.5), np.ones((2, 2), dtype=bool))
    if self_weight == 0 and n % 2 == 0:
        raise ConfigError(
            f"ring with self_weight 0 and an even number of workers ({n}) has eigenvalue -1 and "
            "never reaches consensus; use self_weight > 0 (e.g. 1/3)"
        )
    adj = graphs.circulant_adjacency(n, (1, -1))
    w = np.where(adj, (1 - self_weight) / 2, 0.0) + self_weight * np.eye(n)
    return _make("ring", w, adj)


def torus(n: int) -> Topology:
    """2-D wrap-around grid rows × cols (the most square split with both >= 3), weights 1/5."""
    n = graphs.check_workers("torus", n)
    rows, cols = graphs.torus_shape(n)
    adj = graphs.torus_adjacency(rows, cols)
    return _make("torus", _uniform(adj, 1 / 5), adj, f"{rows} x {cols}")


def hypercube(n: int) -> Topology:
    """k-dimensional hypercube over n = 2^k workers, uniform weights 1/(k+1)."""
    n = graphs.check_workers("hypercube", n)
    k = graphs.power_of_two_exponent(n)
    if not k:
        raise ConfigError(f"hypercube needs a power-of-two number of workers >= 2, got {n!r}")
    idx = np.arange(n)
    adj = np.zeros((n, n), dtype=bool)
    for bit in range(k):
        adj[idx, idx ^ (1 << bit)] = True
    return _make("hypercube", _uniform(adj, 1 / (k + 1)), adj)


def exponential(n: int) -> Topology:
    """Static exponential graph (Ying et al. 2021): i receives from i - 2^j, j < ceil(log2 n),
    W = (I + sum_j P_{2^j}) / (ceil(log2 n) + 1). Doubly stochastic, not symmetric."""
    n = graphs.check_workers("exponential", n)
    tau = graphs.log2_ceil(n)
    # 2^j < n for j < tau, so the offsets are distinct and non-zero mod n: no merged edges.
    adj = graphs.circulant_adjacency(n, [2**j for j in range(tau)])
    return _make("exponential", _uniform(adj, 1 / (tau + 1)), adj)


def symmetric_exponential(n: int) -> Topology:
    """Neighbours i ± 2^j, j < ceil(log2 n), Metropolis–Hastings weights (N=16: rho = 0.5)."""
    n = graphs.check_workers("symmetric_exponential", n)
    offsets = [s for j in range(graphs.log2_ceil(n)) for s in (2**j, -(2**j))]
    adj = graphs.circulant_adjacency(n, offsets)
    return _make("symmetric_exponential", graphs.metropolis_weights(adj), adj)


def one_peer_exponential(n: int) -> Topology:
    """Time-varying: in round r worker i sends to i + 2^(r mod ceil(log2 n)) and
    W_r = (I + P_r)/2. Exact average after log2 n rounds only when n is a power of two."""
    n = graphs.check_workers("one_peer_exponential", n)
    mats = []
    for r in range(graphs.log2_ceil(n)):
        adj = graphs.circulant_adjacency(n, [2**r])
        w = _uniform(adj, 0.5)
        validate(w, adj)
        mats.append(w)
    return Topology("one_peer_exponential", tuple(mats))


def complete(n: int) -> Topology:
    """Everyone averages with everyone: W = 11^T/n (rho = 0). n = 1 is allowed."""
    n = graphs.check_workers("complete", n, minimum=1)
    return _make("complete", np.full((n, n), 1.0 / n), ~np.eye(n, dtype=bool))


def star(n: int) -> Topology:
    """Hub 0 linked to every other worker, Metropolis–Hastings weights."""
    n = graphs.check_workers("star", n)
    adj = np.zeros((n, n), dtype=bool)
    adj[0, 1:] = adj[1:, 0] = True
    return _make("star", graphs.metropolis_weights(adj), adj)


def erdos_renyi(n: int, p: float = 0.3, seed: int = 0, max_tries: int = 100) -> Topology:
    """G(n, p) with Metropolis–Hastings weights, drawn from numpy's generator at `seed`;
    a disconnected draw is retried at seed + 1, seed + 2, ... up to `max_tries` seeds."""
    n = graphs.check_workers("erdos_renyi", n)
    if not 0 < p <= 1:
        raise ConfigError(f"erdos_renyi edge probability p must be in (0, 1], got {p}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"erdos_renyi seed must be an integer, got {seed!r}")
    for s in range(seed, seed + max_tries):
        upper = np.triu(np.random.default_rng(s).random((n, n)) < p, k=1)
        adj = upper | upper.T
        if graphs.count_components(adj) == 1:
            return _make("erdos_renyi", graphs.metropolis_weights(adj), adj, f"p={p}, seed={s}")
    last_seed = seed + max_tries - 1
    raise ConfigError(
        f"no connected erdos_renyi graph with n={n}, p={p} in seeds {seed}..{last_seed}; "
        f"raise p (connectivity needs p above about ln(n)/n = {math.log(n) / n:.3f})"
    )


def _from_adjacency(adj: np.ndarray, name: str, what: str, description: str) -> Topology:
    if len(adj) < 2:
        raise ConfigError(f"{what} needs at least 2 nodes, got {len(adj)}")
    graphs.require_connected(adj, what)
    return _make(name, graphs.metropolis_weights(adj), adj, description)


def from_networkx(graph: Any, name: str = "networkx") -> Topology:
    """A networkx graph (directed ones symmetrised) with Metropolis–Hastings weights; nodes
    are relabelled 0..n-1 in sorted order."""
    return _from_adjacency(graphs.networkx_adjacency(graph), name, "graph", "")


def from_edge_list(path: str | Path) -> Topology:
    """An edge-list file ("i j" per line, '#' comments) with Metropolis–Hastings weights;
    nodes are relabelled 0..n-1 in sorted order."""
    adj = graphs.read_edge_list(path)
    return _from_adjacency(adj, "file", f"graph in {str(path)!r}", str(path))


_BUILDERS = MappingProxyType(
    {
        "ring": ring,
        "torus": torus,
        "hypercube": hypercube,
        "exponential": exponential,
        "symmetric_exponential": symmetric_exponential,
        "one_peer_exponential": one_peer_exponential,
        "complete": complete,
        "star": star,
        "erdos_renyi": erdos_renyi,
    }
)
TOPOLOGIES: tuple[str, ...] = (*_BUILDERS, "file")


def options_of(name: str) -> tuple[str, ...]:
    """The options topology `name` takes (its builder's keyword arguments), checked once here
    for `build` and for the run config."""
    key = check_choice("topology", name.replace("-", "_"), TOPOLOGIES)
    if key == "file":
        return ("path",)
    return tuple(inspect.signature(_BUILDERS[key]).parameters)[1:]


def build(name: str, n_workers: int | None, **options: Any) -> Topology:
    """Build a topology by name (hyphens accepted for underscores).

    "file" reads an edge list: `build("file", n_workers, path=PATH)`; n_workers may be None
    (take it from the file), otherwise it must match the file's node count.
    """
    key = name.replace("-", "_")
    allowed = options_of(key)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"topology {key!r} takes no option {unknown[0]!r}; it takes: "
            f"{', '.join(allowed) or 'no options'}"
        )
    if key == "file":
        if options.get("path") is None:
            raise ConfigError("topology 'file' needs an edge-list path (path=..., CLI --edges)")
        topology = from_edge_list(options["path"])
        if n_workers is not None and n_workers != topology.n_workers:
            raise ConfigError(
                f"edge-list file {str(options['path'])!r} has {topology.n_workers} nodes but "
                f"{n_workers} workers were asked for"
            )
        return topology
    if n_workers is None:
        raise ConfigError(f"topology {key!r} needs a number of workers (--workers N)")
    return _BUILDERS[key](n_workers, **options)
