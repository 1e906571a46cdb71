"""`gossipgan` command line: one subcommand per module in this package.

User mistakes (ConfigError) become one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
import time

from gossipgan.errors import ConfigError, Diverged, PeerFailure


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors on one line and exit status 2 like ours."""

    def error(self, message: str):
        self.exit(2, f"gossipgan: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from gossipgan.cli import (
        bench_cmd,
        config_cmd,
        eval_cmd,
        reproduce_cmd,
        solve,
        topology_cmd,
        train_cmd,
    )

    parser = _Parser(prog="gossipgan", description="Decentralized optimistic training of GANs "
                     "and min-max games over gossip graphs.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in (train_cmd, solve, topology_cmd, eval_cmd, bench_cmd, config_cmd, reproduce_cmd):
        module.add_parser(sub)
    return parser


# Failures of the machine's storage rather than of the code, whichever file they hit.
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                      errno.ENAMETOOLONG, errno.EISDIR, errno.ENOTDIR, errno.EIO}
OUT_OF_MEMORY = ("out of memory: lower the sizes asked for (topology.workers, run.batch, "
                 "game.width, samples)")


# Under torchrun the other ranks wait this long before exiting silently, so that torchrun
# (which stops the group when the first rank exits) does not stop rank 0 before it printed.
SHARED_ERROR_GRACE_S = 3.0


def _error(message: str, code: int, shared: bool = False) -> int:
    """One line on stderr. A `shared` error (every rank raised the same one: bad input, an
    error the ranks agreed on, a divergence found together) is printed by rank 0 only."""
    if shared and int(os.environ.get("WORLD_SIZE", "1")) > 1 \
            and os.environ.get("RANK", "0") != "0":
        time.sleep(SHARED_ERROR_GRACE_S)
        return code
    print(f"gossipgan: error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    return code


def entry() -> None:
    """The `gossipgan` command: exits with main()'s status; a rank of a torch.distributed
    launch (RANK in the environment) through `gossipgan.comm.dist.leave`, which skips the
    interpreter teardown that can abort it (seen on an error exit)."""
    code = main()
    if "RANK" in os.environ:
        from gossipgan.comm.dist import leave

        leave(code)
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 done (or interrupted with a checkpoint), 2 bad input or a file or memory
    problem (one line), 3 training diverged (one line), 4 a peer stalled or died under
    torch.distributed (one line), 130 Ctrl-C before training began, 1 a bug (traceback)."""
    try:
        args = build_parser().parse_args(argv)
        rank0 = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 logs
        args.main_process = rank0
        logging.basicConfig(level=logging.INFO if rank0 else logging.WARNING,
                            format="%(levelname)s %(name)s: %(message)s")
        # -v: our debug lines, not every library's (matplotlib's font search); set on every
        # call, so one command's level does not leak into the next main() of this process
        verbose = args.verbose and rank0
        logging.getLogger("gossipgan").setLevel(logging.DEBUG if verbose else logging.NOTSET)
        return int(args.func(args) or 0)
    except ConfigError as e:
        return _error(str(e), 2, shared=True)
    except Diverged as e:
        return _error(str(e), e.exit_code, shared=True)
    except PeerFailure as e:  # each rank waited for its own peers: each says which
        return _error(str(e), e.exit_code)
    except BrokenPipeError:  # `gossipgan config | head`: the reader left, nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:
        if e.filename is None and e.errno not in ENVIRONMENT_ERRNOS:
            raise  # not a file the user named nor a full or read-only disk: a bug
        names = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
        return _error(f"{names or 'writing the run files'}: {e.strerror or e}", 2)
    except MemoryError:
        return _error(OUT_OF_MEMORY, 2)
    except RuntimeError as e:  # torch's allocator says so in a RuntimeError
        if "can't allocate memory" not in str(e) and "not enough memory" not in str(e):
            raise
        return _error(f"{OUT_OF_MEMORY} ({str(e).splitlines()[0][:120]})", 2)
    except KeyboardInterrupt:  # before the training loop took over Ctrl-C: nothing to save yet
        print("gossipgan: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
