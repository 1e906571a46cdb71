"""`gossipgan bench network`: gossip against all-reduce over emulated network conditions.

Root: one network namespace per worker, `tbf` bandwidth on every link and one-way latency
from a userspace TUN delay router (gossipgan.netem). Without root: `--app-delay`, the same
grid with DistComm's application-level per-hop delay on loopback (no bandwidth limit),
labelled as the fallback in every output.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from gossipgan.netem import grid as gridmod
from gossipgan.netem import report
from gossipgan.netem.namespaces import remove_stale
from gossipgan.netem.units import split_list

QUICK = {"workers": 4, "bandwidths": ["100mbit"], "latencies": ["20ms"],
         "topologies": ["ring", "one_peer_exponential"], "rounds": [1], "iters": 20,
         "compression": ["topk:0.05"], "ddp": ["ddp-adam"]}


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="systems benchmarks (bench network: emulated networks)",
                       description="Systems benchmarks.")
    bench_sub = p.add_subparsers(dest="bench", required=True, parser_class=type(p))
    n = bench_sub.add_parser(
        "network", help="DPOSG/DPOAdam vs all-reduce over emulated bandwidth and latency",
        description="Runs algorithm x topology x rounds for each network condition with real "
        "processes in network namespaces (root), measures time per iteration, compute, "
        "communication, bytes and time to a cls_fid, beside the alpha-beta model's prediction "
        "from alpha and beta measured on the emulated link; writes results.csv, peer.csv and "
        "plots. Default: N=8, 1gbit and 100mbit, 0/5/20 ms one-way, the digits GAN (MLP, "
        "WGAN-GP, 87k parameters = 348 kB per message), 30 iterations per cell.")
    g = gridmod.Grid()
    n.add_argument("--workers", type=int, default=None, help=f"N [{g.workers}]")
    n.add_argument("--bandwidth", default=None,
                   help=f"comma list, e.g. 1gbit,100mbit [{','.join(g.bandwidths)}]")
    n.add_argument("--latency", default=None,
                   help=f"comma list of one-way per-hop latencies [{','.join(g.latencies)}]")
    n.add_argument("--algos", default=None, help=f"comma list [{','.join(g.algos)}]")
    n.add_argument("--topologies", default=None,
                   help=f"for the decentralized algorithms [{','.join(g.topologies)}]")
    n.add_argument("--rounds", default=None, help="gossip rounds t, comma list [1,2]")
    n.add_argument("--iters", type=int, default=None, help=f"iterations per cell [{g.iters}]")
    n.add_argument("--quick", action="store_true",
                   help="N=4, 100mbit, 20ms, ring and one-peer exponential, t=1, 20 iterations, "
                   "top-k 5%% and ddp-adam (explicit flags still win)")
    n.add_argument("--app-delay", action="store_true",
                   help="fallback without root: DistComm's per-hop delay on loopback, no "
                   "bandwidth limit (labelled in every output)")
    n.add_argument("--shaper", default="tbf", choices=["tbf", "htb"],
                   help="tbf: one FIFO per link (default); htb: same rate, pure ACKs first, "
                   "like a host's fair-queueing qdisc")
    n.add_argument("--compression", default=None,
                   help="compressed DPOAdam ring t=1 cells, comma list ('' for none) "
                   f"[{','.join(g.compression)}]")
    n.add_argument("--consensus-step", type=float, default=None,
                   help="CHOCO's gamma of the compressed cells [1 for qsgd:8 and qsgd:4, "
                   "0.1 for the others]")
    n.add_argument("--ddp", default=None,
                   help=f"torch DDP baselines, comma list ('' for none) [{','.join(g.ddp)}]")
    n.add_argument("--no-peer", action="store_true", help="skip the decent-dp comparison")
    n.add_argument("--target-fid", type=float, default=None,
                   help="cls_fid for time-to-quality [CPOAdam's final cls_fid per condition]")
    n.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every cell, e.g. --set game.width=32")
    n.add_argument("--out", default="runs/bench-network", help="output folder")
    n.add_argument("--cleanup", action="store_true",
                   help="only remove namespaces left by benchmark runs that were killed")
    n.set_defaults(func=run)


def grid_from_args(args: argparse.Namespace) -> gridmod.Grid:
    values = dict(QUICK) if args.quick else {}
    given = {"workers": args.workers, "iters": args.iters,
             "bandwidths": split_list(args.bandwidth) if args.bandwidth else None,
             "latencies": split_list(args.latency) if args.latency else None,
             "algos": [a.lower() for a in split_list(args.algos)] if args.algos else None,
             "topologies": split_list(args.topologies) if args.topologies else None,
             "rounds": _ints(args.rounds) if args.rounds else None,
             "compression": None if args.compression is None else split_list(args.compression),
             "consensus_step": args.consensus_step,
             "ddp": None if args.ddp is None else split_list(args.ddp)}
    values.update({k: v for k, v in given.items() if v is not None})
    grid = gridmod.Grid(**values, emulation="app-delay" if args.app_delay else "netns",
                        shaper=args.shaper,
                        peer=not args.no_peer, target_fid=args.target_fid, overrides=args.set)
    if args.app_delay and args.bandwidth:
        from gossipgan.errors import ConfigError

        raise ConfigError("--app-delay cannot limit bandwidth (it runs on loopback); drop "
                          "--bandwidth, or run as root without --app-delay")
    return grid


def _ints(text: str) -> list[int]:
    from gossipgan.errors import ConfigError

    try:
        return [int(x) for x in split_list(text)]
    except ValueError:
        raise ConfigError(f"--rounds needs a comma list of integers, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    if args.cleanup:
        removed = remove_stale()
        print(f"removed {len(removed)} stale namespace(s){': ' if removed else ''}"
              f"{' '.join(removed)}")
        return 0
    grid = grid_from_args(args)
    grid.validate()
    out = Path(args.out)
    conds, cells = grid.conditions(), grid.cells()
    print(f"bench network: N={grid.workers}, {len(conds)} condition(s) x {len(cells)} cell(s), "
          f"{grid.iters} iterations each [{grid.label()}]", flush=True)
    return run_and_report(grid, out)


def run_and_report(grid: gridmod.Grid, out: Path) -> int:
    """Run the grid, printing each condition's table as it finishes; write CSVs and plots."""
    spec = {"workers": grid.workers, "iters": grid.iters}
    rows, curves, peers = [], {}, []
    start = time.perf_counter()

    def on_result(result: dict) -> None:
        cond_rows, cond_curves = report.cell_rows(result, spec)
        report.add_targets(cond_rows, cond_curves, grid.target_fid)
        cond_peers = report.peer_rows(result, spec)
        rows.extend(cond_rows)
        peers.extend(cond_peers)
        key = (cond_rows[0]["bandwidth"], cond_rows[0]["latency_ms"])
        curves.update({(key, name): c for name, c in cond_curves.items()})
        print(report.condition_header(result, cond_rows))
        print(report.format_table(cond_rows))
        print(report.format_versus(cond_rows))
        if cond_peers:
            print("   decent-dp (live peer) vs gossipgan DistComm, same schedule and bytes:")
            print(report.format_peer(cond_peers))
        print(f"   [{time.perf_counter() - start:.0f} s elapsed]", flush=True)
        report.write_csv(rows, out / "results.csv", report.COLUMNS)
        report.write_csv(peers, out / "peer.csv", report.PEER_COLUMNS)

    gridmod.run_grid(grid, out, on_result)
    from gossipgan.netem.plots import plot_all

    paths = plot_all(rows, curves, out)
    print(f"wrote {out / 'results.csv'}, {out / 'peer.csv'}, "
          + ", ".join(str(p) for p in paths))
    return 0
