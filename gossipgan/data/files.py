"""Loaders for datasets the user already has on disk (nothing is downloaded).

Every loader returns ``(x, y, classes)``: ``x`` float32 [n, C, H, W] scaled to [-1, 1],
``y`` int64 [n] or None, ``classes`` a tuple of class names or None. Expected layouts:

``mnist-idx`` (MNIST, Fashion-MNIST, KMNIST ... in the original idx format), root = a folder::

    root/train-images-idx3-ubyte[.gz]   root/train-labels-idx1-ubyte[.gz]
    root/t10k-images-idx3-ubyte[.gz]    root/t10k-labels-idx1-ubyte[.gz]

  raw or gzipped; ``train-images.idx3-ubyte`` style names (a dot before ``idx``) work too.
  split "train" reads train-*, "test" reads t10k-*, "all" both. Images are [n, H, W] uint8.

``cifar10``, root = the extracted ``cifar-10-batches-py/`` folder (or the folder holding it)::

    root/data_batch_1 ... root/data_batch_5   root/test_batch   [root/batches.meta]

  python pickles of dicts with ``b"data"`` (uint8 [n, 3072], channel-major RGB 32x32) and
  ``b"labels"`` (n ints). Only numpy arrays and plain containers are unpickled.

``imagefolder``, root = a folder with one sub-folder per class::

    root/<class_name>/*.png|*.jpg|*.jpeg

  labels follow the sorted class folder names; every image is resized to image_size x
  image_size (default 32); kept grayscale (1 channel) if every image is mode "L", otherwise
  converted to RGB (3 channels). No split: use a separate folder for test images.

``npz``, root = the ``.npz`` file, holding ``x`` (required) and ``y`` (optional, integer [n]);
split "test" reads ``x_test`` / ``y_test`` instead, "all" both (when present). ``x`` layouts:

  [n, H, W] (grayscale); [n, H, W, C] when the last axis is 1 or 3; otherwise [n, C, H, W]
  when axis 1 is 1 or 3. Values: any integer dtype in 0..255 (mapped to [-1, 1]); float
  entirely within [0, 1] (taken as [0, 1], mapped to [-1, 1]); other float within [-1, 1]
  (kept). Anything else is rejected.
"""

from __future__ import annotations

import gzip
import pickle
import zlib
from pathlib import Path

import numpy as np
import torch

from gossipgan.errors import ConfigError

Loaded = tuple[torch.Tensor, torch.Tensor | None, tuple[str, ...] | None]

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_LAYOUT = "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-* likewise"
_CIFAR_LAYOUT = "cifar-10-batches-py/ with data_batch_1..5 and test_batch"
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_NPZ_LAYOUT = "x [n,H,W] | [n,H,W,C] | [n,C,H,W] (C = 1 or 3), optional integer y [n]"


def uint8_to_unit(a: np.ndarray) -> torch.Tensor:
    """Map 0..255 values to float32 in [-1, 1]."""
    return torch.from_numpy(np.asarray(a, dtype=np.float32) / 127.5 - 1.0)


def _labels(a: np.ndarray, n: int, where: str) -> torch.Tensor:
    if a.ndim != 1 or len(a) != n or not np.issubdtype(a.dtype, np.integer):
        raise ConfigError(f"{where}: labels must be integers of shape [{n}], got "
                          f"{a.dtype} {list(a.shape)}")
    if n and a.min() < 0:
        raise ConfigError(f"{where}: labels must be >= 0, got {int(a.min())}")
    return torch.from_numpy(a.astype(np.int64))


# ---------------------------------------------------------------- idx (MNIST format)

def read_idx_bytes(path: Path) -> bytes:
    """The decompressed content of an idx file (gzip detected by its magic bytes)."""
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, zlib.error) as err:
        raise ConfigError(f"cannot read idx file {path}: {err}") from err


def parse_idx(data: bytes, where: str = "idx data") -> np.ndarray:
    """Parse an idx buffer: 2 zero bytes, a dtype code, ndim, ndim big-endian uint32 dims."""
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in _IDX_DTYPES:
        raise ConfigError(f"{where} is not an idx file (bad magic number {data[:4].hex()})")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = tuple(int(d) for d in np.frombuffer(data[4:header], dtype=">u4"))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(dims) != ndim or len(data) != expected:
        raise ConfigError(f"{where}: idx header says {list(dims)} ({expected} bytes) but the "
                          f"file has {len(data)} bytes")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)


def find_idx_file(root: Path, prefix: str, kind: str) -> Path:
    """Locate ``<prefix>-<kind>-idx?-ubyte[.gz]`` (or ``.idx?-ubyte``) under `root`."""
    ndim = 3 if kind == "images" else 1
    for sep in ("-", "."):
        for ext in ("", ".gz"):
            path = root / f"{prefix}-{kind}{sep}idx{ndim}-ubyte{ext}"
            if path.is_file():
                return path
    raise ConfigError(f"missing {root / f'{prefix}-{kind}-idx{ndim}-ubyte'}[.gz]; expected "
                      f"{root}/ to hold {_IDX_LAYOUT}")


def idx_pair(images: bytes, labels: bytes, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Parse matching image / label idx buffers into ([n, 1, H, W] in [-1, 1], int64 [n])."""
    x = parse_idx(images, f"{where} images")
    if x.ndim != 3 or x.dtype != np.uint8:
        raise ConfigError(f"{where}: images must be uint8 [n, H, W], got {x.dtype} "
                          f"{list(x.shape)}")
    y = _labels(parse_idx(labels, f"{where} labels"), len(x), f"{where} labels")
    return uint8_to_unit(x)[:, None], y


def load_idx_dir(root: Path, split: str) -> Loaded:
    """MNIST-format idx files in `root` (see the module docstring)."""
    _need_dir(root, _IDX_LAYOUT)
    parts = []
    for prefix in {"train": ["train"], "test": ["t10k"], "all": ["train", "t10k"]}[split]:
        images = find_idx_file(root, prefix, "images")
        labels = find_idx_file(root, prefix, "labels")
        parts.append(idx_pair(read_idx_bytes(images), read_idx_bytes(labels), str(images.parent)))
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), None


# ---------------------------------------------------------------- CIFAR-10 python batches

class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and builtins only, so a crafted batch file cannot run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):  # noqa: D102
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        return super().find_class(module, name)


def _unpickle(path: Path):
    try:
        with path.open("rb") as f:
            return _ArrayUnpickler(f, encoding="bytes").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as err:
        raise ConfigError(f"cannot read CIFAR-10 file {path}: {err}") from err


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise ConfigError(f"missing {path}; expected {_CIFAR_LAYOUT}")
    batch = _unpickle(path)
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ConfigError(f"{path}: expected a pickled dict with b'data' and b'labels'")
    data = np.asarray(batch[b"data"])
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
        raise ConfigError(f"{path}: b'data' must be uint8 [n, 3072], got {data.dtype} "
                          f"{list(data.shape)}")
    return data, np.asarray(batch[b"labels"])


def load_cifar10(root: Path, split: str) -> Loaded:
    """CIFAR-10 python batches (see the module docstring); x is [n, 3, 32, 32]."""
    _need_dir(root, _CIFAR_LAYOUT)
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] if split != "test" else []
    names += ["test_batch"] if split != "train" else []
    xs, ys = [], []
    for name in names:
        data, labels = _read_cifar_batch(root / name)
        xs.append(data)
        ys.append(_labels(labels, len(data), str(root / name)))
    classes = None
    meta = root / "batches.meta"
    if meta.is_file():
        raw = _unpickle(meta)
        names_raw = raw.get(b"label_names") if isinstance(raw, dict) else None
        classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names_raw or ())
    x = uint8_to_unit(np.concatenate(xs).reshape(-1, 3, 32, 32))
    return x, torch.cat(ys), classes or None


# ---------------------------------------------------------------- image folder

def load_imagefolder(root: Path, image_size: int) -> Loaded:
    """One sub-folder per class of PNG/JPEG files (see the module docstring)."""
    from PIL import Image, UnidentifiedImageError

    layout = "root/<class_name>/*.png|*.jpg|*.jpeg"
    _need_dir(root, layout)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ConfigError(f"{root} has no class sub-folders; expected {layout}")
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        found = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        if not found:
            raise ConfigError(f"class folder {root / name} has no .png/.jpg/.jpeg images; "
                              f"expected {layout}")
        files += [(p, label) for p in found]
    try:
        # Headers only: decide grayscale vs RGB before decoding anything.
        modes = []
        for path, _ in files:
            with Image.open(path) as img:
                modes.append(img.mode)
        mode = "L" if all(m == "L" for m in modes) else "RGB"
        arrays = []
        for path, _ in files:
            with Image.open(path) as img:
                img = img.convert(mode).resize((image_size, image_size), Image.BILINEAR)
                arrays.append(np.asarray(img, dtype=np.uint8))
    except (OSError, UnidentifiedImageError) as err:
        raise ConfigError(f"cannot read image {path}: {err}") from err
    x = np.stack(arrays)
    x = x[:, None] if mode == "L" else x.transpose(0, 3, 1, 2)
    y = torch.tensor([label for _, label in files], dtype=torch.int64)
    return uint8_to_unit(np.ascontiguousarray(x)), y, tuple(classes)


# ---------------------------------------------------------------- npz arrays

def _npz_images(x: np.ndarray, where: str) -> torch.Tensor:
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    elif not (x.ndim == 4 and x.shape[1] in (1, 3)):
        raise ConfigError(f"{where}: x has shape {list(x.shape)}; expected {_NPZ_LAYOUT}")
    if len(x) == 0:
        raise ConfigError(f"{where}: x holds no samples")
    if np.issubdtype(x.dtype, np.integer):
        if x.min() < 0 or x.max() > 255:
            raise ConfigError(f"{where}: integer x must lie in 0..255, got "
                              f"{x.min()}..{x.max()}")
        return uint8_to_unit(np.ascontiguousarray(x))
    if not np.issubdtype(x.dtype, np.floating):
        raise ConfigError(f"{where}: x must be integer (0..255) or float, got {x.dtype}")
    lo, hi = float(x.min()), float(x.max())
    if not (np.isfinite(lo) and np.isfinite(hi) and -1.0 <= lo and hi <= 1.0):
        raise ConfigError(f"{where}: float x must lie in [0, 1] or [-1, 1], got [{lo}, {hi}]")
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return t * 2.0 - 1.0 if lo >= 0.0 else t


def load_npz(path: Path, split: str) -> Loaded:
    """Arrays `x` [/ `y`] (or `x_test` / `y_test` for split "test") of a .npz file."""
    if not path.is_file():
        raise ConfigError(f"missing file {path}; expected a .npz with {_NPZ_LAYOUT}")
    try:
        arrays = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zlib.error) as err:
        raise ConfigError(f"cannot read {path} as .npz: {err}") from err
    if not isinstance(arrays, np.lib.npyio.NpzFile):
        raise ConfigError(f"{path} is a single .npy array, not a .npz; expected {_NPZ_LAYOUT}")
    with arrays:
        keys = {"train": [""], "test": ["_test"], "all": ["", "_test"]}[split]
        keys = [k for k in keys if k == "" or split == "test" or f"x{k}" in arrays.files]
        xs, ys = [], []
        for k in keys:
            if f"x{k}" not in arrays.files:
                raise ConfigError(f"{path} has no array 'x{k}' (has {', '.join(arrays.files)}); "
                                  f"expected {_NPZ_LAYOUT}")
            xs.append(_npz_images(_npz_array(arrays, f"x{k}", path), f"{path}[x{k}]"))
            if f"y{k}" in arrays.files:
                y_arr = _npz_array(arrays, f"y{k}", path)
                ys.append(_labels(y_arr, len(xs[-1]), f"{path}[y{k}]"))
    if len({tuple(x.shape[1:]) for x in xs}) > 1:
        raise ConfigError(f"{path}: x and x_test have different image shapes")
    if ys and len(ys) != len(xs):
        raise ConfigError(f"{path}: labels given for only one of x / x_test")
    x = torch.cat(xs)
    y = torch.cat(ys) if ys else None
    return x, y, None


def _npz_array(arrays, key: str, path: Path) -> np.ndarray:
    try:
        return arrays[key]
    except (OSError, ValueError, zlib.error) as err:  # e.g. object arrays need pickle: refused
        raise ConfigError(f"cannot read array {key!r} of {path}: {err}") from err


def _need_dir(root: Path, layout: str) -> None:
    if not root.is_dir():
        raise ConfigError(f"data folder {root} does not exist; expected {layout}")
