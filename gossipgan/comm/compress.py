"""Compressed gossip with error feedback: CHOCO-gossip over any Communicator.

CHOCO-gossip (Koloskova, Stich & Jaggi, ICML 2019): every worker i keeps public copies x̂_j of
itself and of its in-neighbours, which all holders of x̂_j keep equal because they add the
same compressed message. One round of it, for each tensor gossiped:

    q_i = Q(x_i - x̂_i)                     sent to the out-neighbours (compressed)
    x̂_j <- x̂_j + q_j                       for i itself and every in-neighbour j
    x_i <- x_i + γ sum_j W[i, j] (x̂_j - x̂_i)

The difference x - x̂ that Q drops is not lost but sent in later rounds (error feedback): the
copies converge to the iterates and the iterates to consensus for any contractive Q, with γ
small enough (γ = 1 and Q = identity is plain gossip). Stored the memory-efficient way of
CHOCO-SGD's implementation (Koloskova, Lin, Stich & Jaggi, ICLR 2020, Alg. 2): instead of one
copy per neighbour, each worker keeps x̂_i and s_i = sum_j W[i, j] x̂_j and adds
sum_j W[i, j] q_j into s_i, so memory is two model copies whatever the degree.

The optimizers keep x̂ and s in their `self.state` (checkpointed and resumed with everything
else) and call `mix` where they would call `comm.mix`. The first time, the copies are set up
exactly with one uncompressed round (x̂_i = x_i, s_i = (W x)_i): starting them at zero, as the
paper does, would spend the first rounds of a run sending the whole model through Q.

Only static graphs: with a time-varying schedule a message reaches a different subset of the
holders of x̂_j each round, and their copies would drift apart.

For min-max problems: CHOCO's guarantees are for minimisation (convex, and nonconvex in the
ICLR 2020 paper). Every decentralized method here uses it as its consensus layer under the
operator step, unchanged; no convergence result for that combination on variational
inequalities is claimed. The games' measurements are in BENCHMARKS.md.
"""

from __future__ import annotations

from torch import Tensor

from gossipgan.comm.base import Communicator
from gossipgan.comm.compressors import Compressor, generator_for
from gossipgan.errors import ConfigError


class CompressedGossip:
    """CHOCO-gossip rounds over `comm` with `compressor`, consensus step `gamma`.

    Randomised compressors draw from generators seeded by (seed, worker, gossip round), so
    the simulator and one process per worker send the same messages."""

    def __init__(self, comm: Communicator, compressor: Compressor, gamma: float, seed: int = 0):
        if comm.topology.period != 1:
            raise ConfigError(f"optim.compression needs a static graph; topology "
                              f"{comm.topology.name!r} changes neighbours every round (use "
                              "ring, torus, hypercube, exponential, complete, ...)")
        if not 0 < gamma <= 1:
            raise ConfigError(f"optim.consensus_step must be in (0, 1], got {gamma}")
        self.comm, self.compressor, self.gamma, self.seed = comm, compressor, gamma, seed

    def init_memory(self, xs: list[Tensor], round_index: int
                    ) -> tuple[list[Tensor], list[Tensor]]:
        """(x̂, s) for [n_local, d] tensors `xs`: one exact, uncompressed round."""
        sums = self.comm.mix(xs, 1, round_index)
        return [x.clone() for x in xs], [s.clone() for s in sums]

    def message_bytes(self, xs: list[Tensor]) -> int:
        """Bytes of one worker's message for [n_local, d] tensors `xs` (one gossip round)."""
        return sum(self.compressor.nbytes(x.shape[1], x.element_size()) for x in xs)

    def mix(self, xs: list[Tensor], hats: list[Tensor], sums: list[Tensor], rounds: int,
            first_round: int) -> list[Tensor]:
        """`rounds` CHOCO rounds from global gossip round `first_round` on [n_local, d]
        tensors `xs`; updates the copies `hats` and sums `sums` in place, returns new x."""
        comm, q = self.comm, self.compressor
        dims = [x.shape[1] for x in xs]
        counts: list[int] = []

        def decode(payload: list[Tensor]) -> list[Tensor]:
            out, start = [], 0
            for d, c in zip(dims, counts, strict=True):
                out.append(q.decode(payload[start:start + c], d))
                start += c
            return out

        for j in range(rounds):
            r = first_round + j
            gens = ([generator_for(self.seed, w, r, xs[0].device) for w in comm.workers]
                    if q.random else [])
            payload: list[Tensor] = []
            counts.clear()
            for x, h in zip(xs, hats, strict=True):
                parts = q.encode(x - h, gens)
                counts.append(len(parts))
                payload += parts
            local = decode(payload)
            received = comm.mix_encoded(payload, decode, local, r)
            new = []
            for x, h, s, mine, got in zip(xs, hats, sums, local, received, strict=True):
                h.add_(mine)
                s.add_(got)
                new.append(x + self.gamma * (s - h))
            xs = new
        return xs


__all__ = ["CompressedGossip"]
