"""Keep freed memory in the process instead of handing it back to the kernel after every step.

glibc's malloc returns big freed blocks to the kernel (munmap, or trimming the top of the
heap) and maps fresh pages for the next big allocation; each fresh 4 KiB page then costs a
page fault when it is first written. The simulator allocates and frees tens of MB every step
(N workers' gradients and activations, the optimizer's and the gossip round's new tensors):
with glibc's defaults every step page-faults that memory in again (counted in
tests/test_layout.py; the cost is measured in BENCHMARKS.md). Raising the two thresholds keeps that
memory for the next step instead. The process then holds on to its peak heap, which a
training process reaches again every step anyway.

It changes malloc for the whole process, so the library never calls it on its own: the
simulator's entry points opt in (`gossipgan train` / `solve` with the simulator backend and
the benchmarks call it; a Python user calls `gossipgan.sim.keep_freed_memory()`). Only on
glibc (Linux); elsewhere, or with GOSSIPGAN_KEEP_FREED_MEMORY=0, it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 256 << 20  # free memory at the heap top kept before trimming
MMAP_THRESHOLD = 32 << 20  # blocks below this come from the heap (glibc's dynamic maximum)


def keep_freed_memory() -> bool:
    """Raise glibc's trim and mmap thresholds (for the whole process, as malloc is); True if
    they are set. Calling it again sets the same values again, which is harmless."""
    if os.environ.get("GOSSIPGAN_KEEP_FREED_MEMORY", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl without mallopt, Windows)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
                and mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    log.debug("glibc malloc thresholds %s", "raised" if done else "left as they were")
    return done
