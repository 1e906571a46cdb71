"""Communicators: how workers exchange tensors (simulated in one process, or torch.distributed).

    SimComm(topology)    all N workers in this process, tensors stacked on a worker axis
    DistComm(topology)   one worker per process under torchrun; join the process group first
                         with init_process_group() (env:// rendezvous, gloo or NCCL)
"""

from gossipgan.comm.base import Communicator, Traffic
from gossipgan.comm.dist import DistComm, init_process_group
from gossipgan.comm.sim import SimComm

__all__ = ["Communicator", "DistComm", "SimComm", "Traffic", "init_process_group"]
