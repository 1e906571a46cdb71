"""Atomic, checksummed checkpoints.

File layout: a magic line, the SHA-256 of the payload, then the payload (torch.save bytes).
Written to a temporary file in the same directory, fsynced, then renamed over the old one:
a crash at any moment leaves either the old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path

import torch

from gossipgan.errors import ConfigError

MAGIC = b"GOSSIPGAN-CKPT-1\n"


def save_checkpoint(state: dict, path: str | Path) -> None:
    path = Path(path)
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest().encode()
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + digest + b"\n" + payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:  # a full or failing disk: name the checkpoint it could not write
        Path(tmp).unlink(missing_ok=True)
        raise OSError(err.errno, err.strerror or str(err), str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_checkpoint(path: str | Path) -> dict:
    """Read and verify a checkpoint; ConfigError naming the file if it is missing or damaged."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no checkpoint at {path}")
    data = path.read_bytes()
    head = len(MAGIC) + 65
    if not data.startswith(MAGIC) or len(data) < head or data[head - 1:head] != b"\n":
        raise ConfigError(f"{path} is not a gossipgan checkpoint (bad header): the file is damaged")
    digest, payload = data[len(MAGIC):head - 1], data[head:]
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        raise ConfigError(f"checkpoint {path} is corrupted or truncated (checksum mismatch)")
    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
