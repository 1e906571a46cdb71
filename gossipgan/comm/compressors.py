"""Compressors for compressed gossip: what one worker puts on the wire for a tensor.

Each compressor turns the rows of an [n_local, d] tensor (one row per worker this process
holds) into a *payload*, a short list of tensors that carry the worker axis and travel as they
are (values + int32 indices, or one scale + packed codes), and back into dense rows:

    topk:F    the ceil(F d) largest magnitudes of each row: values and int32 indices
    randk:F   ceil(F d) coordinates drawn per (seed, worker, round): values and int32 indices
    qsgd:B    stochastic B-bit quantization (B in 8, 4, 2), B bits per coordinate packed
              8/B per byte, plus one scale per row

Randomness (randk's coordinates, qsgd's rounding) comes from a generator seeded by
(seed, worker, round) and drawn in the order of the tensors, so the simulator, which holds all
rows, and one process per worker draw the same numbers: the runs are equal.

qsgd is the unbiased stochastic rounding of QSGD (Alistarh et al., NeurIPS 2017) with the
row's max-norm as scale and s = 2^(B-1) - 1 levels a side, divided by tau = 1 + omega where
omega is the rounding's own variance relative to ||x||^2 (computed exactly from the rounding
probabilities): CHOCO's scaled quantizer Q/tau (Koloskova et al., ICML 2019, Sec. 3), which is
a contraction, E||Q(x)/tau - x||^2 <= (1 - 1/tau)||x||^2, as the error feedback needs. At 2
bits (one level a side) omega is often above 1 and the unscaled rounding would not contract.
"""

from __future__ import annotations

import abc
import math

import torch
from torch import Tensor

from gossipgan.errors import ConfigError

BITS = (8, 4, 2)
_MIX = 0x9E3779B97F4A7C15  # splitmix64's increment: spreads (seed, worker, round) apart


def generator_for(seed: int, worker: int, round_index: int, device) -> torch.Generator:
    """The generator of one worker's compression in one gossip round (any backend)."""
    z = (seed * 1_000_003 + worker) * _MIX + round_index + 1
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 % 2**64
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB % 2**64
    return torch.Generator(device=device).manual_seed((z ^ (z >> 31)) % 2**63)


class Compressor(abc.ABC):
    spec: str = "none"
    # CHOCO's consensus step gamma when the config leaves it null. Measured on the digits GAN
    # (DPOAdam, 8-worker ring, 1600 iterations, BENCHMARKS.md "Choosing γ on the GAN"): at 4
    # and 8 bits gamma = 1 keeps the workers together; top-k 5 % drifts apart without bound at
    # 1 and at 0.3 and stays bounded at 0.1. 0.1 for random-k and 2 bits is a guess.
    default_consensus_step: float = 0.1

    @abc.abstractmethod
    def encode(self, x: Tensor, gens: list[torch.Generator]) -> list[Tensor]:
        """The payload of the rows of [n, d] `x`; gens[i] draws row i's randomness."""

    @abc.abstractmethod
    def decode(self, payload: list[Tensor], d: int) -> Tensor:
        """The dense [n, d] rows a payload stands for."""

    @abc.abstractmethod
    def nbytes(self, d: int, element_size: int) -> int:
        """Bytes of one row's payload for a tensor of d elements of `element_size` bytes."""

    @property
    def random(self) -> bool:
        return False


class Sparse(Compressor):
    """k = ceil(fraction * d) coordinates: values and int32 indices."""

    def __init__(self, fraction: float, kind: str):
        self.fraction, self.spec = fraction, f"{kind}:{fraction:g}"

    def k(self, d: int) -> int:
        return max(1, min(d, math.ceil(self.fraction * d)))

    def decode(self, payload: list[Tensor], d: int) -> Tensor:
        values, index = payload
        out = values.new_zeros(values.shape[0], d)
        return out.scatter_(1, index.long(), values)

    def nbytes(self, d: int, element_size: int) -> int:
        return self.k(d) * (element_size + 4)

    def _payload(self, x: Tensor, index: Tensor) -> list[Tensor]:
        return [x.gather(1, index), index.to(torch.int32)]


class TopK(Sparse):
    def __init__(self, fraction: float):
        super().__init__(fraction, "topk")

    def encode(self, x: Tensor, gens: list[torch.Generator]) -> list[Tensor]:
        return self._payload(x, x.abs().topk(self.k(x.shape[1]), dim=1, sorted=False).indices)


class RandK(Sparse):
    def __init__(self, fraction: float):
        super().__init__(fraction, "randk")

    @property
    def random(self) -> bool:
        return True

    def encode(self, x: Tensor, gens: list[torch.Generator]) -> list[Tensor]:
        d, k = x.shape[1], self.k(x.shape[1])
        index = torch.stack([torch.randperm(d, generator=g, device=x.device)[:k] for g in gens])
        return self._payload(x, index)


class QSGD(Compressor):
    """Stochastic rounding to s = 2^(bits-1) - 1 levels a side of the row's max |x|."""

    def __init__(self, bits: int):
        self.bits, self.spec = bits, f"qsgd:{bits}"
        self.default_consensus_step = 1.0 if bits >= 4 else 0.1
        self.levels = 2 ** (bits - 1) - 1
        self.per_byte = 8 // bits

    @property
    def random(self) -> bool:
        return True

    def encode(self, x: Tensor, gens: list[torch.Generator]) -> list[Tensor]:
        s = self.levels
        u = torch.stack([torch.rand(x.shape[1], generator=g, device=x.device, dtype=x.dtype)
                         for g in gens])
        top = x.abs().amax(dim=1, keepdim=True)
        # |x| / top first: s / tiny overflows to inf, and 0 * inf is NaN
        level = x.abs() / top.clamp_min(torch.finfo(x.dtype).tiny) * s
        low = level.floor()
        p = level - low
        q = (low + (u < p).to(x.dtype)).clamp_max(s)
        # omega: the rounding's expected squared error over ||x||^2, from its probabilities
        var = (p * (1 - p)).sum(dim=1, keepdim=True) * (top / s) ** 2
        tau = 1 + var / x.pow(2).sum(dim=1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
        scale = top / (s * tau)
        codes = (q * x.sign() + s).to(torch.uint8)  # in 0 .. 2s < 2^bits
        return [scale, self._pack(codes)]

    def _pack(self, codes: Tensor) -> Tensor:
        n, d = codes.shape
        per = self.per_byte
        if per == 1:
            return codes
        padded = codes.new_zeros(n, -(-d // per) * per)
        padded[:, :d] = codes
        shifts = torch.arange(per, device=codes.device, dtype=torch.uint8) * self.bits
        return (padded.view(n, -1, per) << shifts).sum(dim=2, dtype=torch.uint8)

    def _unpack(self, packed: Tensor, d: int) -> Tensor:
        per = self.per_byte
        if per == 1:
            return packed
        shifts = torch.arange(per, device=packed.device, dtype=torch.uint8) * self.bits
        mask = (1 << self.bits) - 1
        codes = (packed.unsqueeze(2) >> shifts) & mask
        return codes.reshape(packed.shape[0], -1)[:, :d]

    def decode(self, payload: list[Tensor], d: int) -> Tensor:
        scale, packed = payload
        return (self._unpack(packed, d).to(scale.dtype) - self.levels) * scale

    def nbytes(self, d: int, element_size: int) -> int:
        return -(-d // self.per_byte) + element_size


def parse_compression(spec: str) -> Compressor | None:
    """`none` (None), `topk:F`, `randk:F` (0 < F <= 1) or `qsgd:B` (B in 8, 4, 2)."""
    text = str(spec).strip().lower()
    if text == "none":
        return None
    kind, _, arg = text.partition(":")
    allowed = "allowed: none, topk:F, randk:F (0 < F <= 1), qsgd:B (B in 8, 4, 2)"
    if kind in ("topk", "randk"):
        try:
            fraction = float(arg)
        except ValueError:
            fraction = math.nan
        if not 0 < fraction <= 1:
            raise ConfigError(f"optim.compression {spec!r}: the fraction must be in (0, 1]; "
                              f"{allowed}")
        return TopK(fraction) if kind == "topk" else RandK(fraction)
    if kind == "qsgd":
        if arg not in {str(b) for b in BITS}:
            raise ConfigError(f"optim.compression {spec!r}: bits must be one of 8, 4, 2; "
                              f"{allowed}")
        return QSGD(int(arg))
    raise ConfigError(f"unknown optim.compression {spec!r}; {allowed}")


def consensus_step_for(spec: str, gamma: float | None) -> float:
    """gamma itself, or (None) the compressor's default: 1 without compression."""
    if gamma is not None:
        return gamma
    compressor = parse_compression(spec)
    return 1.0 if compressor is None else compressor.default_consensus_step


__all__ = ["BITS", "Compressor", "QSGD", "RandK", "TopK", "consensus_step_for", "generator_for",
           "parse_compression"]
