"""Loaders for datasets the user already has on disk (nothing is downloaded).

Every loader returns ``(x, y, classes)``: ``x`` float32 [n, C, H, W] scaled to [-1, 1],
``y`` int64 [n] or None, ``classes`` a tuple of class names or None. Expected layouts:

``mnist-idx`` (MNIST, Fashion-MNIST, KMNIST ... in the original idx format), root = a folder::

    root/train-images-idx3-ubyte[.gz]   root/train-labels-idx1-ubyte[.gz]
    root/t10k-images-idx3-ubyte[.gz]    root/t10k-labels-idx1-ubyte[.gz]

  raw or gzipped; ``train-images.idx3-ubyte`` style names (a dot before ``idx``) work too.
  split "train" reads train-*, "test" reads t10k-*, "all" both. Images are [n, H, W] uint8
  (n, H, W >= 1), labels [n] integers; a file longer or shorter than its header says is
  refused, and nothing is decompressed past what the header allows.

``cifar10``, root = the extracted ``cifar-10-batches-py/`` folder (or the folder holding it)::

    root/data_batch_1 ... root/data_batch_5   root/test_batch   [root/batches.meta]

  python pickles of dicts with ``b"data"`` (uint8 [n, 3072], channel-major RGB 32x32) and
  ``b"labels"`` (n ints in 0..9); ``batches.meta`` a dict whose ``b"label_names"`` lists 10
  names. Only numpy arrays and plain containers are unpickled (`checks.ArrayUnpickler`).

``imagefolder``, root = a folder with one sub-folder per class::

    root/<class_name>/*.png|*.jpg|*.jpeg

  labels follow the sorted class folder names; every image is resized to image_size x
  image_size (default 32, at most 1024); kept grayscale (1 channel) if every image is mode
  "L", otherwise converted to RGB (3 channels). Files are decoded as PNG or JPEG only, and
  only up to 8192 x 8192 pixels. No split: use a separate folder for test images.

``npz``, root = the ``.npz`` file, holding ``x`` (required) and ``y`` (optional, integer [n]);
split "test" reads ``x_test`` / ``y_test`` instead, "all" both (when present). ``x`` layouts:

  [n, H, W] (grayscale); [n, H, W, C] when the last axis is 1 or 3; otherwise [n, C, H, W]
  when axis 1 is 1 or 3. Values: any integer dtype in 0..255 (mapped to [-1, 1]); float
  entirely within [0, 1] (taken as [0, 1], mapped to [-1, 1]); other float within [-1, 1]
  (kept); NaN / inf are rejected. Anything else is rejected, and so are object arrays (the
  file is read with allow_pickle=False).

Whatever a file holds, a loader raises one `ConfigError` (a one-line message naming the file)
rather than another exception, and refuses sizes from a header that exceed this machine's
memory before allocating them (see `gossipgan.data.checks`).
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np
import torch

from gossipgan.data.checks import (
    as_array,
    bad,
    check_memory,
    describe,
    human_bytes,
    labels,
    safe_unpickle,
)

Loaded = tuple[torch.Tensor, torch.Tensor | None, tuple[str, ...] | None]

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_LAYOUT = "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-* likewise"
_CIFAR_LAYOUT = "cifar-10-batches-py/ with data_batch_1..5 and test_batch"
_CIFAR_CLASSES = 10


def uint8_to_unit(a: np.ndarray) -> torch.Tensor:
    """Map 0..255 values to float32 in [-1, 1]."""
    out = np.array(a, dtype=np.float32)  # one float copy, scaled in place
    out /= 127.5
    out -= 1.0
    return torch.from_numpy(out)


def need_dir(root: Path, layout: str) -> None:
    """Refuse a data root that is not a folder, saying what it should hold."""
    if not root.is_dir():
        state = "is a file, not a folder" if root.exists() else "does not exist"
        raise bad(f"data folder {root} {state}; expected {layout}")


# ---------------------------------------------------------------- idx (MNIST format)

def _idx_header(head: bytes, where: str) -> tuple[np.dtype, tuple[int, ...], int]:
    """(dtype, dims, total bytes) from an idx header: 2 zero bytes, dtype code, ndim, dims."""
    if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in _IDX_DTYPES:
        raise bad(f"{where} is not an idx file (bad magic number {head[:4].hex() or 'none'}; "
                  f"expected 0000 then a dtype code in "
                  f"{', '.join(f'{c:02x}' for c in _IDX_DTYPES)} then ndim)")
    ndim = head[3]
    size = 4 + 4 * ndim
    if len(head) < size:
        raise bad(f"{where}: idx header announces {ndim} dims but the file ends after "
                  f"{len(head)} bytes")
    dims = tuple(int.from_bytes(head[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[head[2]])
    return dtype, dims, size + dtype.itemsize * math.prod(dims)  # Python ints: no overflow


def read_idx_bytes(path: Path) -> bytes:
    """The decompressed content of an idx file (gzip detected by its magic bytes).

    The header is read first; its size is checked against this machine's memory and nothing
    beyond it is decompressed, so a small .gz cannot expand without bound.
    """
    try:
        with path.open("rb") as raw:
            gz = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            f = gzip.GzipFile(fileobj=raw) if gz else raw
            head = f.read(4)
            head += f.read(4 * head[3]) if len(head) == 4 else b""
            dtype, dims, total = _idx_header(head, str(path))
            if not gz and path.stat().st_size != total:
                _idx_mismatch(path, dims, total, path.stat().st_size)
            # raw bytes plus the float32 tensor they become
            check_memory(total + 4 * (total - len(head)) // dtype.itemsize,
                         f"idx file {path} ({'x'.join(map(str, dims))} values)")
            data = head + f.read(total - len(head) + 1)  # one byte more: detect a longer file
    except (OSError, EOFError, zlib.error) as err:
        raise bad(f"cannot read idx file {path}: {describe(err)}") from err
    if len(data) != total:
        _idx_mismatch(path, dims, total, len(data), gz)
    return data


def _idx_mismatch(path: Path, dims, total: int, got: int, gz: bool = False) -> None:
    size = f"{total} bytes" + (f" = {human_bytes(total)}" if total >= 1024 else "")
    got_text = f"more than {total}" if gz and got > total else str(got)  # gz: read stops
    raise bad(f"idx file {path}: idx header says {list(dims)} ({size}) but the file holds "
              f"{got_text} bytes{' decompressed' if gz else ''}; truncated or not an idx file")


def parse_idx(data: bytes, where: str = "idx data") -> np.ndarray:
    """Parse an idx buffer: 2 zero bytes, a dtype code, ndim, ndim big-endian uint32 dims."""
    dtype, dims, total = _idx_header(data[:4 + 4 * data[3]] if len(data) >= 4 else data, where)
    if len(data) != total:
        raise bad(f"{where}: idx header says {list(dims)} ({total} bytes) but the data has "
                  f"{len(data)} bytes")
    return np.frombuffer(data, dtype=dtype, offset=4 + 4 * len(dims)).reshape(dims)


def find_idx_file(root: Path, prefix: str, kind: str) -> Path:
    """Locate ``<prefix>-<kind>-idx?-ubyte[.gz]`` (or ``.idx?-ubyte``) under `root`."""
    ndim = 3 if kind == "images" else 1
    for sep in ("-", "."):
        for ext in ("", ".gz"):
            path = root / f"{prefix}-{kind}{sep}idx{ndim}-ubyte{ext}"
            if path.is_file():
                return path
    raise bad(f"missing {root / f'{prefix}-{kind}-idx{ndim}-ubyte'}[.gz]; expected "
              f"{root}/ to hold {_IDX_LAYOUT}")


def idx_pair(images: bytes, labels_raw: bytes, where: str,
             labels_where: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Parse matching image / label idx buffers into ([n, 1, H, W] in [-1, 1], int64 [n]).

    `where` / `labels_where` name the two files in messages (the default: "<where> labels").
    """
    x = parse_idx(images, where)
    if x.ndim != 3 or x.dtype != np.uint8 or 0 in x.shape:
        raise bad(f"{where}: images must be uint8 [n, H, W] with n, H, W >= 1, got {x.dtype} "
                  f"{list(x.shape)}")
    labels_where = labels_where or f"{where} labels"
    y = labels(parse_idx(labels_raw, labels_where), len(x), f"{labels_where} (for {len(x)} "
               f"images)")
    return uint8_to_unit(x)[:, None], y


def load_idx_dir(root: Path, split: str) -> Loaded:
    """MNIST-format idx files in `root` (see the module docstring)."""
    need_dir(root, _IDX_LAYOUT)
    parts = []
    for prefix in {"train": ["train"], "test": ["t10k"], "all": ["train", "t10k"]}[split]:
        images = find_idx_file(root, prefix, "images")
        labels_path = find_idx_file(root, prefix, "labels")
        parts.append(idx_pair(read_idx_bytes(images), read_idx_bytes(labels_path), str(images),
                              str(labels_path)))
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), None


# ---------------------------------------------------------------- CIFAR-10 python batches

def _read_cifar_batch(path: Path) -> tuple[np.ndarray, torch.Tensor]:
    if not path.is_file():
        raise bad(f"missing {path}; expected {_CIFAR_LAYOUT}")
    batch = safe_unpickle(path, "CIFAR-10 batch")
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        got = (f"a dict with keys {', '.join(sorted(repr(k)[:30] for k in batch)[:6])}"
               if isinstance(batch, dict) else f"a {type(batch).__name__}")
        raise bad(f"{path}: expected a pickled dict with b'data' and b'labels', got {got}")
    data = as_array(batch[b"data"], f"{path} b'data'")
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8 or not len(data):
        raise bad(f"{path}: b'data' must be uint8 [n, 3072] with n >= 1, got {data.dtype} "
                  f"{list(data.shape)}")
    y = labels(as_array(batch[b"labels"], f"{path} b'labels'"), len(data),
               f"{path} b'labels'", _CIFAR_CLASSES)
    return data, y


def _read_cifar_meta(path: Path) -> tuple[str, ...]:
    meta = safe_unpickle(path, "CIFAR-10 metadata")
    names = meta.get(b"label_names") if isinstance(meta, dict) else None
    if (not isinstance(names, list | tuple) or len(names) != _CIFAR_CLASSES
            or not all(isinstance(n, bytes | str) for n in names)):
        if not isinstance(meta, dict):
            got = f"a {type(meta).__name__}"
        elif isinstance(names, list | tuple):
            got = f"{len(names)} entries of types {sorted({type(n).__name__ for n in names})}"
        else:
            got = f"b'label_names' of type {type(names).__name__}"
        raise bad(f"{path}: expected a pickled dict whose b'label_names' lists "
                  f"{_CIFAR_CLASSES} names (bytes or str), got {got}")
    return tuple(n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names)


def load_cifar10(root: Path, split: str) -> Loaded:
    """CIFAR-10 python batches (see the module docstring); x is [n, 3, 32, 32]."""
    need_dir(root, _CIFAR_LAYOUT)
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] if split != "test" else []
    names += ["test_batch"] if split != "train" else []
    meta = root / "batches.meta"
    classes = _read_cifar_meta(meta) if meta.is_file() else None
    xs, ys = [], []
    for name in names:
        data, y = _read_cifar_batch(root / name)
        xs.append(data)
        ys.append(y)
    n = sum(len(d) for d in xs)
    check_memory(n * 3072 * 4, f"CIFAR-10 in {root} ({n} images as float32)")
    x = uint8_to_unit(np.concatenate(xs).reshape(-1, 3, 32, 32))
    return x, torch.cat(ys), classes
