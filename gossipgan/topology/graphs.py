"""Graph plumbing behind `gossipgan.topology`: adjacency matrices, connectivity,
Metropolis–Hastings weights and user-graph loading (edge-list files, networkx graphs).

Everything here is plain numpy on boolean N×N adjacency matrices (`adj[i, j]` True when i and
j are neighbours, never on the diagonal); the mixing matrices themselves are built in
`gossipgan.topology`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from gossipgan.errors import ConfigError


def check_workers(name: str, n: int, minimum: int = 2) -> int:
    """Return `n` as an int if it is an integer >= `minimum`, else raise a ConfigError."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise ConfigError(f"{name} needs an integer number of workers >= {minimum}, got {n!r}")
    return int(n)


def log2_ceil(n: int) -> int:
    """ceil(log2 n) computed exactly on integers (float log2 rounds badly near powers of 2)."""
    return (n - 1).bit_length()


def power_of_two_exponent(n: int) -> int | None:
    """k with n == 2**k, or None when n is not a power of two."""
    return n.bit_length() - 1 if n > 0 and n & (n - 1) == 0 else None


def circulant_adjacency(n: int, offsets: Iterable[int]) -> np.ndarray:
    """Directed adjacency with adj[i, (i - s) % n] for every offset s: i receives from i - s.

    Offsets congruent to 0 mod n are dropped and duplicates collapse, so small n is safe.
    """
    adj = np.zeros((n, n), dtype=bool)
    rows = np.arange(n)
    for s in offsets:
        if s % n:
            adj[rows, (rows - s) % n] = True
    return adj


def torus_shape(n: int) -> tuple[int, int]:
    """The most square rows × cols = n with rows <= cols and both >= 3."""
    for rows in range(math.isqrt(n), 2, -1):
        if n % rows == 0 and n // rows >= 3:
            return rows, n // rows
    raise ConfigError(
        f"torus needs a number of workers that factors as rows x cols with rows, cols >= 3 "
        f"(e.g. 9, 12, 16), got {n}"
    )


def torus_adjacency(rows: int, cols: int) -> np.ndarray:
    """2-D torus: worker r*cols + c talks to its four wrap-around grid neighbours."""
    n = rows * cols
    adj = np.zeros((n, n), dtype=bool)
    for r in range(rows):
        for c in range(cols):
            i = r * cols + c
            for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                adj[i, ((r + dr) % rows) * cols + (c + dc) % cols] = True
    return adj


def count_components(adj: np.ndarray) -> int:
    """Number of connected components of the undirected graph adj | adj.T (iterative DFS)."""
    sym = adj | adj.T
    n = sym.shape[0]
    seen = np.zeros(n, dtype=bool)
    components = 0
    for start in range(n):
        if seen[start]:
            continue
        components += 1
        seen[start] = True
        stack = [start]
        while stack:
            node = stack.pop()
            for nxt in np.flatnonzero(sym[node] & ~seen):
                seen[nxt] = True
                stack.append(int(nxt))
    return components


def metropolis_weights(adj: np.ndarray) -> np.ndarray:
    """Metropolis–Hastings weights W[i, j] = 1 / (1 + max(deg_i, deg_j)) on edges, the rest
    on the diagonal. Symmetric and doubly stochastic for any undirected graph."""
    assert (adj == adj.T).all() and not adj.diagonal().any(), "needs a simple undirected graph"
    deg = adj.sum(axis=1)
    w = np.where(adj, 1.0 / (1.0 + np.maximum(deg[:, None], deg[None, :])), 0.0)
    np.fill_diagonal(w, 1.0 - w.sum(axis=1))
    return w


def require_connected(adj: np.ndarray, what: str) -> None:
    """Raise a ConfigError naming the component count when the graph is disconnected."""
    components = count_components(adj)
    if components != 1:
        raise ConfigError(
            f"{what} is disconnected ({components} connected components); gossip needs a "
            "connected graph"
        )


def adjacency_from_pairs(pairs: Iterable[tuple[Any, Any]], nodes: Iterable[Any]) -> np.ndarray:
    """Undirected adjacency over `nodes` relabelled 0..n-1 in sorted order; self-loops are
    dropped (the diagonal of W is the self weight anyway)."""
    node_list = list(set(nodes))
    try:
        node_list.sort()
    except TypeError:  # mixed label types do not compare; fall back to their text
        node_list.sort(key=repr)
    index = {node: k for k, node in enumerate(node_list)}
    adj = np.zeros((len(node_list), len(node_list)), dtype=bool)
    for a, b in pairs:
        if a != b:
            adj[index[a], index[b]] = adj[index[b], index[a]] = True
    return adj


def read_edge_list(path: str | Path) -> np.ndarray:
    """Parse an edge-list file: one "i j" pair of integers per line; '#' starts a comment
    (whole line or trailing), blank lines are skipped. Nodes are relabelled 0..n-1 in sorted
    order. Returns the undirected adjacency."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read edge-list file {str(path)!r}: {exc.strerror}") from None
    pairs: list[tuple[int, int]] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        try:
            if len(fields) != 2:
                raise ValueError
            pairs.append((int(fields[0]), int(fields[1])))
        except ValueError:
            raise ConfigError(
                f"{path}:{lineno}: expected two integer node ids 'i j', got {raw.strip()!r}"
            ) from None
    if not pairs:
        raise ConfigError(f"edge-list file {str(path)!r} has no edges")
    return adjacency_from_pairs(pairs, (node for pair in pairs for node in pair))


def networkx_adjacency(graph: Any) -> np.ndarray:
    """Undirected adjacency of a networkx graph (directed ones are symmetrised), nodes in
    sorted order."""
    return adjacency_from_pairs(graph.edges(), graph.nodes())
