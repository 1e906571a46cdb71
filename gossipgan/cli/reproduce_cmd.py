"""`gossipgan reproduce`: rerun the experiments behind each claim of the seed paper and write
REPRODUCTION.md (figures and CSV tables in docs/reproduction/)."""

from __future__ import annotations

import argparse
import logging
import time

from gossipgan.errors import ConfigError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "reproduce", help="rerun each claim's experiments and write REPRODUCTION.md",
        description="Runs the experiments of claims 1-8 (ordinary training runs under "
        "OUT/<scale>/c<N>/; finished runs are skipped, interrupted ones resumed) and writes "
        "REPRODUCTION.md with figures and CSV tables under docs/reproduction/. Each claim is "
        "reported at the largest scale whose runs are all finished.")
    p.add_argument("--quick", action="store_true",
                   help="small sizes (7.3 min measured on 2 cores)")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # the test's scale
    p.add_argument("--only", default=None, metavar="N,M",
                   help="comma list of claim numbers (1-8), e.g. --only 3,6")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing; redraw the report from the run folders")
    p.add_argument("--out", default="runs/reproduce", help="run folders [runs/reproduce]")
    p.add_argument("--report-dir", default=".",
                   help="where REPRODUCTION.md and docs/reproduction/ go [.]")
    p.add_argument("--jobs", type=int, default=1, metavar="J",
                   help="simulator runs in J processes at once, one thread each; the network "
                   "claims (7, 8) still run alone [1]")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def parse_only(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        numbers = []
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            numbers += list(range(int(lo), int(hi or lo) + 1))
        return numbers
    except ValueError:
        raise ConfigError(f"--only needs claim numbers like 3,6 or 1-5, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    from gossipgan.reproduce import reproduce
    from gossipgan.reproduce.driver import Interrupted
    from gossipgan.sim import keep_freed_memory

    if args.quick and args.tiny:
        raise ConfigError("--quick and --tiny are two scales; pass one")
    scale = "tiny" if args.tiny else "quick" if args.quick else "full"
    if not args.verbose:  # each run's evaluation lines would bury the progress bars
        logging.getLogger("gossipgan").setLevel(logging.WARNING)
        logging.getLogger("gossipgan.reproduce").setLevel(logging.INFO)
    keep_freed_memory()  # this process runs the simulator (an opt-in, gossipgan.sim.malloc)
    start = time.perf_counter()
    try:
        path = reproduce(args.out, scale=scale, only=parse_only(args.only),
                         report_only=args.report_only, report_dir=args.report_dir,
                         progress=not args.no_progress, jobs=args.jobs)
    except Interrupted as err:
        print(f"gossipgan reproduce: {err}")
        return 0
    print(f"wrote {path} in {time.perf_counter() - start:.0f} s")
    return 0
