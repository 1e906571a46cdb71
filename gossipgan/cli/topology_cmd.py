"""`gossipgan topology NAME --workers N`: spectral facts of a gossip graph, optionally a plot.

Prints workers, max degree, rho, spectral gap, rounds for a 1e-3 consensus reduction and
whether the schedule is time-varying; `--json` prints the same as ONE JSON object, `--plot`
draws the graph to an image. User mistakes raise ConfigError for the CLI main to report.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from gossipgan.errors import ConfigError
from gossipgan.topology import TOPOLOGIES, Topology
from gossipgan.topology.graphs import torus_shape
from gossipgan.train.config import TopologyConfig

log = logging.getLogger(__name__)

FACTOR = 1e-3
_CIRCULAR = ("ring", "exponential", "symmetric_exponential", "one_peer_exponential")


def add_parser(subparsers: Any) -> None:
    """Register the `topology` subcommand on an argparse subparsers object."""
    p = subparsers.add_parser(
        "topology",
        help="spectral facts (rho, spectral gap, rounds to consensus) of a gossip graph",
        description="Show the mixing facts of a gossip topology; --plot draws it.",
    )
    p.add_argument("name", help=f"topology: {', '.join(TOPOLOGIES)} (file needs --edges)")
    p.add_argument("--workers", "-n", type=int, default=None, help="number of workers N")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="FILE.png", default=None, help="draw the graph to FILE")
    p.add_argument("--self-weight", type=float, default=None, help="ring self weight")
    p.add_argument("--p", type=float, default=None, help="erdos_renyi edge probability")
    p.add_argument("--seed", type=int, default=None, help="erdos_renyi seed")
    p.add_argument("--edges", metavar="FILE", default=None, help="edge list for 'file'")
    p.set_defaults(func=run)


def topology_from_args(args: argparse.Namespace) -> Topology:
    """Build the topology the options ask for, through the run config's own topology section
    (the one place options are mapped and checked): an option the topology does not take is
    reported, not ignored."""
    section = TopologyConfig(name=args.name, workers=args.workers, self_weight=args.self_weight,
                             p=args.p, graph_seed=args.seed, edges=args.edges)
    return section.build()


def summary(topology: Topology) -> dict[str, Any]:
    """The facts `--json` prints, keys in a fixed order."""
    return {
        "name": topology.name,
        "workers": topology.n_workers,
        "max_degree": topology.max_degree,
        "rho": topology.rho(),
        "spectral_gap": topology.spectral_gap(),
        "rounds_to_1e-3": topology.rounds_to(FACTOR),
        "time_varying": topology.time_varying,
    }


def run(args: argparse.Namespace) -> int:
    """Execute `gossipgan topology`; returns the exit status."""
    topology = topology_from_args(args)
    facts = summary(topology)
    if args.plot is not None:
        plot(topology, args.plot)
    if args.json:
        print(json.dumps(facts))
        return 0
    rounds = facts["rounds_to_1e-3"]
    rows = [
        (
            "topology",
            topology.name + (f" ({topology.description})" if topology.description else ""),
        ),
        ("workers", facts["workers"]),
        ("max degree", facts["max_degree"]),
        (
            "rho",
            f"{facts['rho']:.6g}" + (" (product over one period)" if topology.time_varying else ""),
        ),
        ("spectral gap", f"{facts['spectral_gap']:.6g}"),
        ("rounds to 1e-3", "never (rho >= 1)" if rounds is None else rounds),
        ("time varying", f"yes, period {topology.period}" if topology.time_varying else "no"),
    ]
    if topology.time_varying:
        exact = topology.exact_average_rounds()
        rows.append(("exact average", "never" if exact is None else f"after {exact} rounds"))
    if args.plot is not None:
        rows.append(("plot", args.plot))
    for label, value in rows:
        print(f"{label:<15} {value}")
    return 0


def _layout(topology: Topology, graph: Any) -> dict[int, tuple[float, float]]:
    """Circular for ring-like graphs, the grid for a torus, a seeded spring layout otherwise."""
    import networkx as nx

    if topology.name in _CIRCULAR:
        return nx.circular_layout(graph)
    if topology.name == "torus":
        rows, cols = torus_shape(topology.n_workers)
        return {i: (float(i % cols), -float(i // cols)) for i in range(rows * cols)}
    return nx.spring_layout(graph, seed=0)


def plot(topology: Topology, path: str | Path) -> None:
    """Draw the graph (union of every round's edges; arrows when directed) to an image."""
    path = Path(path)
    if not path.parent.is_dir():
        raise ConfigError(f"--plot directory {str(path.parent)!r} does not exist")
    import networkx as nx
    from matplotlib.figure import Figure

    graph = nx.DiGraph() if topology.directed else nx.Graph()
    graph.add_nodes_from(range(topology.n_workers))
    for r in range(topology.period):
        graph.add_edges_from(topology.edges(r))
    pos = _layout(topology, graph)
    # Edges longer than one grid step (torus wrap-around) would hide under a row or column:
    # draw them as arcs.
    long = {e for e in graph.edges if abs(complex(*pos[e[0]]) - complex(*pos[e[1]])) > 1.01}
    long = long if topology.name == "torus" else set()
    fig = Figure(figsize=(6, 6))
    ax = fig.subplots()
    nx.draw_networkx_nodes(graph, pos, ax=ax, node_color="#9ecae1", node_size=300)
    nx.draw_networkx_labels(graph, pos, ax=ax, font_size=8)
    nx.draw_networkx_edges(
        graph,
        pos,
        ax=ax,
        edgelist=[e for e in graph.edges if e not in long],
        arrows=topology.directed,
        node_size=300,
    )
    if long:
        nx.draw_networkx_edges(
            graph,
            pos,
            ax=ax,
            edgelist=sorted(long),
            arrows=True,
            arrowstyle="-",
            connectionstyle="arc3,rad=0.25",
            edge_color="#888888",
            node_size=300,
        )
    ax.set_title(f"{topology.name}, N={topology.n_workers}, rho={topology.rho():.3g}")
    ax.set_axis_off()
    try:
        fig.savefig(path, dpi=100)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot write --plot {str(path)!r}: {exc}") from None
    log.info("wrote %s", path)
