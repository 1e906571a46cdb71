"""The ``npz`` loader (layout in `gossipgan.data.files`): arrays `x` [/ `y`] of a .npz file.

Each member's .npy header is read and checked (shape, dtype, size against the zip entry and
this machine's memory) before numpy allocates the array it describes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gossipgan.data.checks import bad, check_memory, describe, labels
from gossipgan.data.files import Loaded, uint8_to_unit
from gossipgan.errors import ConfigError

_NPZ_LAYOUT = "x [n,H,W] | [n,H,W,C] | [n,C,H,W] (C = 1 or 3), optional integer y [n]"


def load_npz(path: Path, split: str) -> Loaded:
    """Arrays `x` [/ `y`] (or `x_test` / `y_test` for split "test") of a .npz file."""
    if not path.is_file():
        what = (f"{path} is a folder, not a file" if path.is_dir() else
                f"{path} is not a regular file" if path.exists() else f"missing file {path}")
        raise bad(f"{what}; expected a .npz with {_NPZ_LAYOUT}")
    try:
        fid = path.open("rb")
    except OSError as err:
        raise bad(f"cannot read {path}: {describe(err)}") from err
    # Our own file object: np.load leaks the one it opens when the zip turns out damaged.
    with fid:
        xs, ys = _load_arrays(fid, path, split)
    if len({tuple(x.shape[1:]) for x in xs}) > 1:
        raise bad(f"{path}: x and x_test have different image shapes")
    if ys and len(ys) != len(xs):
        raise bad(f"{path}: labels given for only one of x / x_test")
    x = torch.cat(xs)
    y = torch.cat(ys) if ys else None
    return x, y, None


def _load_arrays(fid, path: Path, split: str) -> tuple[list, list]:
    try:
        head = fid.read(6)
        fid.seek(0)
        # Checked here: numpy calls anything else "pickled data" and suggests allow_pickle.
        if not head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):
            raise bad(f"{path} is not a .npz (zip) file: it starts with {head!r} (pickles "
                      f"are refused); expected a .npz with {_NPZ_LAYOUT}")
        arrays = np.load(fid, allow_pickle=False)
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 - a damaged zip raises BadZipFile, EOFError, ...
        raise bad(f"cannot read {path} as .npz ({_NPZ_LAYOUT}): {describe(err)}") from err
    if not isinstance(arrays, np.lib.npyio.NpzFile):
        raise bad(f"{path} is a single .npy array, not a .npz; expected {_NPZ_LAYOUT}")
    with arrays:
        keys = {"train": [""], "test": ["_test"], "all": ["", "_test"]}[split]
        keys = [k for k in keys if k == "" or split == "test" or f"x{k}" in arrays.files]
        xs, ys = [], []
        for k in keys:
            if f"x{k}" not in arrays.files:
                raise bad(f"{path} has no array 'x{k}' (has {', '.join(arrays.files)}); "
                          f"expected {_NPZ_LAYOUT}")
            xs.append(_npz_images(_npz_array(arrays, f"x{k}", path), f"{path}[x{k}]"))
            if f"y{k}" in arrays.files:
                y_arr = _npz_array(arrays, f"y{k}", path)
                ys.append(labels(y_arr, len(xs[-1]), f"{path}[y{k}]"))
    return xs, ys


def _npz_images(x: np.ndarray, where: str) -> torch.Tensor:
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    elif not (x.ndim == 4 and x.shape[1] in (1, 3)):
        raise bad(f"{where}: x has shape {list(x.shape)}; expected {_NPZ_LAYOUT}")
    if len(x) == 0:
        raise bad(f"{where}: x holds no samples")
    if x.size == 0:
        raise bad(f"{where}: x has shape {list(x.shape)} (no pixels); H and W must be >= 1")
    if np.issubdtype(x.dtype, np.integer):
        if x.min() < 0 or x.max() > 255:
            raise bad(f"{where}: integer x must lie in 0..255, got {x.min()}..{x.max()}")
        return uint8_to_unit(np.ascontiguousarray(x))
    if not np.issubdtype(x.dtype, np.floating):
        raise bad(f"{where}: x must be integer (0..255) or float, got {x.dtype}")
    lo, hi = float(x.min()), float(x.max())  # NaN propagates into both
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise bad(f"{where}: x holds NaN or infinite values (min {lo}, max {hi}); float x "
                  f"must lie in [0, 1] or [-1, 1]")
    if not (-1.0 <= lo and hi <= 1.0):
        raise bad(f"{where}: float x must lie in [0, 1] or [-1, 1], got [{lo}, {hi}]")
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return t * 2.0 - 1.0 if lo >= 0.0 else t


def _npz_array(arrays: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    where = f"array {key!r} of {path}"
    try:
        _check_member(arrays, key, where)
        value = arrays[key]
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 - bad CRC, damaged deflate stream, bad header ...
        raise bad(f"cannot read {where}: {describe(err)}") from err
    if not isinstance(value, np.ndarray):  # NpzFile hands back the bytes of a non-.npy member
        raise bad(f"{where} is not a .npy array (a zip member of {len(value)} raw bytes)")
    return value


def _check_member(arrays: np.lib.npyio.NpzFile, key: str, where: str) -> None:
    """Read the member's .npy header: refuse object arrays, sizes that disagree or do not fit."""
    fmt = np.lib.format
    names = arrays.zip.namelist()
    name = key if key in names else f"{key}.npy"  # NpzFile's own lookup order
    info = arrays.zip.getinfo(name)
    with arrays.zip.open(name) as f:
        if f.read(6) != b"\x93NUMPY":
            return  # not .npy: NpzFile returns raw bytes, refused by the caller
        f.seek(0)
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(f)
        else:  # 3.0 only exists for unicode field names: never an image or label array
            raise bad(f"{where} uses .npy format {version}; expected a plain numeric array")
        header = f.tell()
    if dtype.hasobject:
        raise bad(f"{where} is an object array, which would need pickle (refused: "
                  f"allow_pickle is off); save plain numeric arrays")
    count = 1
    for d in shape:
        count *= d
    nbytes = count * dtype.itemsize
    if info.file_size != header + nbytes:
        raise bad(f"{where}: its .npy header says {dtype} {list(shape)} ({nbytes} bytes) but "
                  f"the member holds {info.file_size - header} bytes; damaged file")
    # the array, then (at most) one float32 copy of it
    check_memory(nbytes + 4 * count, f"{where} ({dtype} {list(shape)})")
