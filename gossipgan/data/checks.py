"""Guards for loading data files nobody vetted: one-line errors, size limits, safe unpickling.

Every problem with a data file is a `ConfigError` built by `bad`, whose message is one line
naming the file, what is wrong and what is allowed. Sizes that come from a file's header are
checked here (`check_memory`) before anything of that size is allocated.

Limits: ``image_size`` (``data.image_size``) at most `MAX_IMAGE_SIZE` = 1024 (the largest side
the bundled models are ever trained at is far below it; 1024x1024 RGB float32 is already 12 MiB
per image); an image file is decoded only if it has at most `MAX_SOURCE_PIXELS` = 8192 x 8192
pixels (every image is resized to at most 1024 x 1024 anyway).
"""

from __future__ import annotations

import functools
import io
import math
import os
import pickle
import pickletools
from pathlib import Path

import numpy as np
import torch

from gossipgan.errors import ConfigError

MAX_IMAGE_SIZE = 1024
MAX_SOURCE_PIXELS = 8192 * 8192
_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def bad(message: str) -> ConfigError:
    """A ConfigError whose message is one line, whatever characters the file names hold."""
    return ConfigError("".join(c if c.isprintable() else c.encode("unicode_escape").decode()
                               for c in message))


def describe(err: BaseException) -> str:
    """An exception as one line of text; the type is named where its text alone is cryptic."""
    text = " ".join(str(err).split())
    if isinstance(err, OSError | ValueError | EOFError) and text:
        return text
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def human_bytes(n: int) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # unreachable


def available_memory() -> int | None:
    """This machine's physical memory in bytes, lowered to the cgroup limit if one is set.

    The total, not what is free right now: the point is to refuse what can never fit, and
    free memory moves with the page cache, which would make loading flaky. None if unknown.
    """
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):  # no sysconf (Windows): psutil if installed
        try:
            import psutil

            total = int(psutil.virtual_memory().total)
        except Exception:  # noqa: BLE001 - unknown memory must not stop loading
            total = None
    for limit_file in _CGROUP_LIMITS:
        try:
            limit = int(Path(limit_file).read_text().strip())  # "max" = no limit
        except (OSError, ValueError):
            continue
        total = limit if total is None else min(total, limit)
    return total


def check_memory(needed: int, what: str) -> None:
    """Refuse to build `what` when it needs more bytes than this machine has."""
    have = available_memory()
    if have is not None and needed > have:
        raise bad(f"{what} needs {human_bytes(needed)} of memory but this machine has "
                  f"{human_bytes(have)}")


def check_image_size(value: object) -> None:
    """`image_size` must be None or an int in 1..MAX_IMAGE_SIZE."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or not 1 <= value <= MAX_IMAGE_SIZE):
        raise bad(f"image_size must be a positive integer at most {MAX_IMAGE_SIZE} "
                  f"(data.image_size), got {value!r}")


def as_array(value: object, where: str) -> np.ndarray:
    """np.asarray, with ragged or odd nested values reported instead of raised."""
    try:
        return np.asarray(value)
    except Exception as err:  # noqa: BLE001 - ragged lists, huge ints, objects without arrays
        raise bad(f"{where} is not an array: {describe(err)}") from err


def labels(a: np.ndarray, n: int, where: str, num_classes: int | None = None) -> torch.Tensor:
    """Integer labels of shape [n] in 0.. (and below `num_classes` when given), as int64."""
    if a.ndim != 1 or len(a) != n or not np.issubdtype(a.dtype, np.integer):
        raise bad(f"{where}: labels must be integers of shape [{n}], got {a.dtype} "
                  f"{list(a.shape)}")
    if n and a.min() < 0:
        raise bad(f"{where}: labels must be >= 0, got {int(a.min())}")
    if n and num_classes is not None and a.max() >= num_classes:
        raise bad(f"{where}: labels must lie in 0..{num_classes - 1}, got {int(a.max())}")
    return torch.from_numpy(a.astype(np.int64))


# ---------------------------------------------------------------- restricted unpickling

def _empty_reconstruct(real, subtype, shape, dtype):
    # numpy pickles an array as _reconstruct(ndarray, (0,), ...) followed by __setstate__ with
    # the real shape and bytes (which numpy checks against each other); any other shape here
    # would be allocated before a byte of data was read.
    if subtype is not np.ndarray or not isinstance(shape, tuple) or math.prod(shape) != 0:
        raise pickle.UnpicklingError("refusing a numpy array reconstruction with a non-empty "
                                     "shape")
    return real(subtype, shape, dtype)


class ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and builtin containers only, so a crafted file cannot run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):  # noqa: D102
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        found = super().find_class(module, name)
        return functools.partial(_empty_reconstruct, found) if name == "_reconstruct" else found


def safe_unpickle(path: Path, what: str) -> object:
    """Unpickle `path` with `ArrayUnpickler`; any failure is one ConfigError naming the file."""
    try:
        size = path.stat().st_size
        check_memory(size, f"{what} {path}")
        # From memory, not the file: a crafted length then reads short instead of making the
        # file object allocate that length.
        raw = path.read_bytes()
        # The C unpickler allocates the length an opcode announces before reading it (a
        # 9-byte file can ask for 2**50 bytes); pickletools checks each length against what
        # is left of the file first, and runs nothing.
        for _ in pickletools.genops(raw):
            pass
        return ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 - garbage makes pickle raise almost anything
        raise bad(f"cannot read {what} {path} (expected a pickle of a dict of numpy arrays "
                  f"and lists): {describe(err)}") from err
