"""Communicators: how workers exchange tensors (simulated in one process, or torch.distributed)."""

from gossipgan.comm.base import Communicator, Traffic
from gossipgan.comm.sim import SimComm

__all__ = ["Communicator", "SimComm", "Traffic"]
