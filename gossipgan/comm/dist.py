"""DistComm: one worker per process on torch.distributed.

Gossip is real neighbour messages: each round, one `batch_isend_irecv` that sends this
worker's flattened tensors to its out-neighbours and receives its in-neighbours' (for the
one-peer exponential schedule, one peer per round). `mean` is an all_reduce. gloo carries CPU
tensors; NCCL keeps CUDA tensors on the GPU.

All tensors of one call travel as one flat buffer: one message per neighbour per round,
whatever the number of parameter tensors.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import sys
import time
import typing

import torch
import torch.distributed as dist
from torch import Tensor

from gossipgan.comm.base import Communicator, Traffic
from gossipgan.errors import ConfigError, PeerFailure
from gossipgan.topology import Topology

LAUNCH_HINT = ("launch one process per worker with torchrun, e.g. "
               "`torchrun --nproc_per_node=4 your_script.py` (the CLI: "
               "`torchrun --nproc_per_node=4 -m gossipgan train --backend dist --workers 4`)")


DEFAULT_TIMEOUT_S = 300.0  # a peer silent this long is taken for stalled (run.comm_timeout_s)


def init_process_group(backend: str = "auto", n_workers: int | None = None,
                       timeout_s: float = DEFAULT_TIMEOUT_S) -> str:
    """Join the torchrun group (env:// rendezvous); returns the backend used.

    n_workers: the run's number of workers, checked against the world size before joining
    (after joining, a rank that exits at once can break a peer still connecting).
    timeout_s: how long any collective or neighbour exchange waits for a peer before it fails
    (gloo's own default is 30 minutes; a frozen machine would hold the others that long).
    """
    if dist.is_initialized():
        return dist.get_backend()
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise ConfigError(f"the distributed backend outside torchrun (no RANK/WORLD_SIZE in "
                          f"the environment): {LAUNCH_HINT}")
    if n_workers is not None and int(os.environ["WORLD_SIZE"]) != n_workers:
        raise ConfigError(_world_error(int(os.environ["WORLD_SIZE"]), n_workers))
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend not in ("gloo", "nccl"):
        raise ConfigError(f"unknown distributed backend {backend!r}; known: auto, gloo, nccl")
    if backend == "nccl" and not torch.cuda.is_available():
        raise ConfigError("NCCL needs a CUDA GPU and none is visible; use run.dist_backend=gloo")
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    store = _attempt_store()
    timeout = datetime.timedelta(seconds=timeout_s)
    if store is None:
        dist.init_process_group(backend=backend, timeout=timeout)
    else:
        dist.init_process_group(backend=backend, store=store, rank=int(os.environ["RANK"]),
                                world_size=int(os.environ["WORLD_SIZE"]), timeout=timeout)
    return backend


def _attempt_store() -> dist.Store | None:
    """Under torchrun's shared store, a store whose keys are fresh in every restart attempt.

    torchrun (torch 2.13) hands its own TCPStore to the workers and keeps it across restarts
    of the group (`--max-restarts`): the process group's keys of the failed attempt are still
    there, so the new ranks read the dead ranks' addresses and fail ("Gloo connectFullMesh
    failed ... Connection refused"). A prefix per attempt gives each attempt its own keys.
    The attempt number is each node's own count: on several nodes it can differ after some
    kinds of failure (pytorch/pytorch#135712); there, prefer TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1
    on every torchrun, which makes rank 0 host a new store each attempt (and this returns None).
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    from torch.distributed.constants import default_pg_timeout

    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                          int(os.environ["WORLD_SIZE"]), is_master=False,
                          timeout=default_pg_timeout)
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return dist.PrefixStore(f"gossipgan/attempt{attempt}", store)


def _world_error(world: int, n_workers: int) -> str:
    return (f"world size {world} differs from the topology's {n_workers} workers: set --workers "
            "to the number of processes")


def leave(code: int) -> typing.NoReturn:
    """End this rank's process with exit status `code` once its output is flushed, without
    the interpreter's teardown: there torch's C++ threads (the store rank 0 hosts, gloo's)
    can be destroyed while a peer is still connected and abort a process whose result is
    already written (SIGABRT, 'terminate called without an active exception')."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def local_device(backend: str) -> torch.device:
    if backend == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


HEARTBEAT = "gossipgan/heartbeat/{rank}"
STUCK = "gossipgan/stuck/{rank}"
STUCK_GRACE_S = 2.0  # how long a failed collective waits for the other live ranks to say so


def _store():
    """The process group's rendezvous store (hosted by torchrun's agent or rank 0: it answers
    even when a worker is frozen), or None."""
    try:
        return dist.distributed_c10d._get_default_store()
    except Exception:  # noqa: BLE001 - a private API: without it, stalls name no peer
        return None


def _laggards(me: int) -> list[int]:
    """Ranks whose last heartbeat is behind this rank's: the ones a collective waits for; if
    none is behind (a rank froze inside a collective, or before an uncounted one), the ranks
    that stay silent (`_silent`)."""
    store = _store()
    if store is None:
        return []
    try:
        beats = {}
        for r in range(dist.get_world_size()):
            key = HEARTBEAT.format(rank=r)
            beats[r] = int(store.get(key)) if store.check([key]) else -1
        behind = [r for r, step in beats.items() if step < beats[me]]
        return behind or _silent(store, me)
    except Exception:  # noqa: BLE001 - the store went away too: name no peer
        return []


def _silent(store, me: int) -> list[int]:
    """The ranks that did not fail too. A rank whose collective failed says so in the store and
    waits STUCK_GRACE_S: the other live ranks wait in the same collective, so their timeouts
    fire within that time and they say so too; the ranks still silent are frozen or dead."""
    store.set(STUCK.format(rank=me), "1")
    time.sleep(STUCK_GRACE_S)
    return [r for r in range(dist.get_world_size())
            if r != me and not store.check([STUCK.format(rank=r)])]


@contextlib.contextmanager
def _peers(me: int, what: str, peers: list[int] | None = None):
    """Turns torch.distributed's failure of a wait (timeout: a stalled peer; connection reset:
    a dead one) into one PeerFailure line naming what this rank waited for: the neighbour of a
    gossip message, or for a collective the ranks whose heartbeat is behind."""
    try:
        yield
    except RuntimeError as err:
        if isinstance(err, PeerFailure):
            raise
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        peers = peers if peers is not None else _laggards(me)
        who = f"rank(s) {', '.join(map(str, peers))}" if peers else "every other rank"
        kind = "timed out" if "timed out" in str(err).lower() or "timeout" in str(err).lower() \
            else "failed"
        raise PeerFailure(f"rank {me}: {what} with {who} {kind} (a peer stopped, died or is "
                          f"unreachable: {first})") from None


class DistComm(Communicator):
    def __init__(self, topology: Topology, delay_s: float = 0.0):
        if not dist.is_initialized():
            raise ConfigError("DistComm needs an initialised process group: call "
                              f"gossipgan.comm.init_process_group() first; {LAUNCH_HINT}")
        world = dist.get_world_size()
        if world != topology.n_workers:
            # Every rank gets here; one that exited while a peer was still connecting the
            # group would turn the peer's error into a gloo traceback.
            dist.barrier()
            raise ConfigError(f"world size {world} differs from the topology's "
                              f"{topology.n_workers} workers: build the topology for "
                              "torch.distributed.get_world_size() workers")
        self.topology = topology
        self.rank = dist.get_rank()
        self.traffic = Traffic()
        self._beats = 0  # collectives entered (see _beat)
        self.delay_s = delay_s  # application-level per-hop latency, for benchmarks without root
        self.device = local_device(dist.get_backend())
        # Receive buffers are reused across rounds: a fresh 348 kB buffer per neighbour per
        # round is a new mapping whose pages fault in on every receive (see _receive_buffers).
        self._recv: dict[tuple, list[Tensor]] = {}

    @property
    def workers(self) -> list[int]:
        return [self.rank]

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def _collective(self, what: str):
        """Enter a collective: counted in the store first (`_beat`), its failure one line."""
        self._beat()
        return _peers(self.rank, what)

    def _beat(self) -> None:
        """Count this collective in the store before entering it. Every rank makes the same
        collectives in the same order, so a rank frozen between two of them has a smaller
        count, and the ranks waiting for it can name it (`_laggards`). Not done for the
        per-step all-reduce of the centralized methods nor for gossip (whose waits name their
        peer directly): a store round trip there would be timed as communication."""
        self._beats += 1
        store = _store()
        if store is not None:
            store.set(HEARTBEAT.format(rank=self.rank), str(self._beats))

    def barrier(self) -> None:
        with self._collective("a barrier"):
            dist.barrier()

    def gather_objects(self, obj) -> list:
        out = [None] * self.n_workers
        with self._collective("an all_gather"):
            dist.all_gather_object(out, obj)
        return out

    def any_true(self, flag: bool) -> bool:
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        with self._collective("an all_reduce"):
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    @staticmethod
    def _flatten(tensors: list[Tensor]) -> Tensor:
        return torch.cat([t.reshape(-1) for t in tensors])

    @staticmethod
    def _unflatten(flat: Tensor, like: list[Tensor]) -> list[Tensor]:
        out, start = [], 0
        for t in like:
            out.append(flat[start:start + t.numel()].view_as(t))
            start += t.numel()
        return out

    def _exchange(self, flat: Tensor, round_index: int) -> Tensor:
        """One gossip round: send to out-neighbours, receive from in-neighbours, average."""
        recv, ins = self._swap(flat, round_index)
        out = flat * self.topology.self_weight(self.rank, round_index)
        for buf, (_, w) in zip(recv, ins, strict=True):
            out.add_(buf, alpha=w)
        return out

    def _mix_encoded(self, payload, decode, local: list[Tensor], round_index: int
                     ) -> list[Tensor]:
        """The payload's bytes as ONE message per neighbour; each received payload decoded
        (payload sizes depend only on the tensors' sizes, so a receiver knows them)."""
        parts = [p.contiguous() for p in payload]
        wire = torch.cat([p.reshape(-1).view(torch.uint8) for p in parts])
        recv, ins = self._swap(wire, round_index)
        out = [t * self.topology.self_weight(self.rank, round_index) for t in local]
        for buf, (_, w) in zip(recv, ins, strict=True):
            got, start = [], 0
            for p in parts:
                n = p.numel() * p.element_size()
                # a copy: a view of a byte offset may be misaligned for the wider dtype
                got.append(buf[start:start + n].clone().view(p.dtype).view(p.shape))
                start += n
            for o, d in zip(out, decode(got), strict=True):
                o.add_(d, alpha=w)
        return out

    def _swap(self, flat: Tensor, round_index: int) -> tuple[list[Tensor], list]:
        """Send `flat` to this round's out-neighbours; return the buffers received from the
        in-neighbours and the in-neighbours (id, weight)."""
        me = self.rank
        ins = self.topology.in_neighbors(me, round_index)
        outs = self.topology.out_neighbors(me, round_index)
        recv = self._receive_buffers(flat, len(ins))
        # Receives are posted before sends: a gloo send waits for the peer's "ready to
        # receive" notice: over emulated links, posting the sends first nearly doubled a
        # model-sized exchange (BENCHMARKS.md, "Network conditions").
        peers = [j for j, _ in ins] + [j for j, _ in outs]
        ops = [dist.P2POp(dist.irecv, buf, j) for buf, (j, _) in zip(recv, ins, strict=True)]
        ops += [dist.P2POp(dist.isend, flat, j) for j, _ in outs]
        if self.delay_s:
            time.sleep(self.delay_s)
        if ops:
            # one wait per message, so a timeout names the peer that did not answer
            for peer, req in zip(peers, dist.batch_isend_irecv(ops), strict=True):
                with _peers(me, f"gossip round {round_index}", [peer]):
                    req.wait()
        return recv, ins

    def _receive_buffers(self, like: Tensor, count: int) -> list[Tensor]:
        """`count` buffers shaped like `like`, kept for the next round: they are read only
        inside _exchange, whose result is a new tensor."""
        key = (like.numel(), like.dtype, like.device)
        bufs = self._recv.setdefault(key, [])
        while len(bufs) < count:
            bufs.append(torch.empty_like(like))
        return bufs[:count]

    def _mix(self, tensors: list[Tensor], rounds: int, step: int) -> list[Tensor]:
        flat = self._flatten(tensors)
        for j in range(rounds):
            flat = self._exchange(flat, step * rounds + j)
        return self._unflatten(flat, tensors)

    def _all_reduce_mean(self, tensors: list[Tensor]) -> Tensor:
        flat = self._flatten(tensors).clone()
        if self.delay_s:
            # a ring all-reduce crosses 2(N-1) hops one after the other
            time.sleep(2 * (self.n_workers - 1) * self.delay_s)
        with _peers(self.rank, "an all_reduce"):
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        return flat.div_(self.n_workers)

    def _mean(self, tensors: list[Tensor]) -> list[Tensor]:
        return self._unflatten(self._all_reduce_mean(tensors), tensors)

    def broadcast(self, tensors: list[Tensor]) -> list[Tensor]:
        flat = self._flatten(tensors).clone()
        dist.broadcast(flat, src=0)
        return self._unflatten(flat, tensors)

    def average(self, tensors: list[Tensor]) -> list[Tensor]:
        # A tensor without the worker axis (a plain module's parameter) would come back as its
        # first slice: refuse the shapes that show it (a [1, ...] one cannot be told apart).
        bad = next((t for t in tensors if t.dim() == 0 or t.shape[0] != 1), None)
        if bad is not None:
            raise ConfigError(
                f"DistComm.average takes tensors with a worker axis of size 1, got shape "
                f"{list(bad.shape)}; for a module's parameters use "
                "gossipgan.own.iterate_state_dict(optimizer, module)")
        flat = self._flatten(tensors).clone()
        with self._collective("an all_reduce"):
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(self.n_workers)
        return [t[0] for t in self._unflatten(flat, tensors)]
