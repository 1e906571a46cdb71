"""The algorithms of DESIGN.md §3, each a GossipOptimizer with its switches set.

Drop-in for torch.optim: `DPOAdam(model.parameters(), comm=comm, lr=2e-4, rounds=1)`.
Per-player step sizes are parameter groups: `[{"params": G.parameters(), "lr": lr_g}, ...]`.
"""

from __future__ import annotations

from gossipgan.errors import check_choice
from gossipgan.optim.extragradient import DExtraGrad
from gossipgan.optim.gossip import GossipOptimizer
from gossipgan.optim.tracking import DPOSGGT, DExtraGradGT, DPOAdamGT


class DPOSG(GossipOptimizer):
    """Decentralized parallel optimistic stochastic gradient (the seed's algorithm)."""
    direction, optimistic, centralized = "sgd", True, False


class DPOAdam(GossipOptimizer):
    """DPOSG with Adam's direction from each worker's own moments (or gossiped: moments='mixed')."""
    direction, optimistic, centralized = "adam", True, False


class CPOSG(GossipOptimizer):
    """Centralized parallel optimistic SGD: all-reduce averaged operator, no gossip."""
    direction, optimistic, centralized = "sgd", True, True


class CPOAdam(GossipOptimizer):
    """Centralized parallel optimistic Adam."""
    direction, optimistic, centralized = "adam", True, True


class DPSGDA(GossipOptimizer):
    """Decentralized parallel SGDA, not optimistic: diverges on bilinear games."""
    direction, optimistic, centralized = "sgd", False, False


class DPAdam(GossipOptimizer):
    """Decentralized parallel Adam, not optimistic."""
    direction, optimistic, centralized = "adam", False, False


ALGORITHMS: dict[str, type[GossipOptimizer]] = {
    "dposg": DPOSG,
    "dpoadam": DPOAdam,
    "cposg": CPOSG,
    "cpoadam": CPOAdam,
    "dpsgda": DPSGDA,
    "dpadam": DPAdam,
    "dextragrad": DExtraGrad,
    # gradient tracking (non-IID shards; 2x bytes per gossip round): optim/tracking.py
    "dposg-gt": DPOSGGT,
    "dpoadam-gt": DPOAdamGT,
    "dextragrad-gt": DExtraGradGT,
}


def optimizer_class(name: str) -> type[GossipOptimizer]:
    """The optimizer class for an algorithm name (ConfigError listing the known ones)."""
    return ALGORITHMS[check_choice("algorithm", name.lower(), ALGORITHMS)]


__all__ = ["ALGORITHMS", "CPOAdam", "CPOSG", "DExtraGrad", "DExtraGradGT", "DPAdam", "DPOAdam",
           "DPOAdamGT", "DPOSG", "DPOSGGT", "DPSGDA", "GossipOptimizer", "optimizer_class"]
