"""Builders of damaged and crafted data files for tests/test_data_hostile.py.

Each case builder returns `build(tmp, monkeypatch)`, which writes its input under `tmp` and
returns (load_dataset keyword arguments with "name" and "root", the text the error message
must name). Nothing here is shipped data: every file is made in the test's tmp_path.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import sys
import types
import zipfile
import zlib
from pathlib import Path

import numpy as np

from gossipgan.data import checks


def limit_memory(mp, nbytes: int = 100) -> None:
    mp.setattr(checks, "available_memory", lambda: nbytes)


def idx_bytes(arr: np.ndarray, code: int = 0x08, dims=None) -> bytes:
    dims = arr.shape if dims is None else dims
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + arr.tobytes()


X, Y = np.zeros((2, 3, 3), np.uint8), np.zeros(2, np.uint8)
X4 = np.zeros((2, 4, 4), np.uint8)


def idx(images: bytes | None = None, labels: bytes | None = None, gz: bool = False,
        compress: bool = True, memory: int | None = None):
    """An idx folder whose train files hold these bytes (gzip-compressed if gz and compress)."""
    def build(tmp: Path, mp):
        root = tmp / "idx"
        root.mkdir()
        paths = {}
        for kind, nd, data in (("images", 3, images), ("labels", 1, labels)):
            path = paths[kind] = root / (f"train-{kind}-idx{nd}-ubyte" + (".gz" if gz else ""))
            data = (idx_bytes(X) if kind == "images" else idx_bytes(Y)) if data is None else data
            path.write_bytes(gzip.compress(data) if gz and compress else data)
        if memory is not None:
            limit_memory(mp, memory)
        bad = paths["labels"] if labels is not None else paths["images"]
        return {"name": "mnist-idx", "root": str(root)}, str(bad)
    return build


BATCH = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}


class Evil:
    """Unpickling this would run a shell command (what a restricted unpickler must stop)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class HugeArray:
    """Unpickling this would make numpy allocate a 1 TiB array before reading any data."""

    def __reduce__(self):
        return np.ndarray.__reduce__(np.zeros(0))[0], (np.ndarray, (2**40,), b"b")


class HugeState:
    """An array whose pickled state claims 2**40 rows but carries the bytes of 2."""

    def __reduce__(self):
        func, args, state = np.zeros((2, 3072), np.uint8).__reduce__()
        return func, args, (state[0], (2**40, 3072), *state[2:])


def cifar(batch=None, meta=None, memory: int | None = None):
    """A cifar-10-batches-py folder; `batch` / `meta` (objects, or bytes, or a function of
    the folder giving bytes) replace data_batch_1 / batches.meta."""
    def build(tmp: Path, mp):
        root = tmp / "cifar-10-batches-py"
        root.mkdir()
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            (root / name).write_bytes(pickle.dumps(BATCH))
        (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"c"] * 10}))
        bad = root
        for name, value in (("data_batch_1", batch), ("batches.meta", meta)):
            if value is not None:
                value = value(root) if callable(value) else value
                (root / name).write_bytes(value if isinstance(value, bytes)
                                          else pickle.dumps(value))
                bad = root / name
        if memory is not None:
            limit_memory(mp, memory)
        return {"name": "cifar10", "root": str(root)}, str(bad)
    return build


def with_data(value) -> dict:
    return {**BATCH, b"data": value}


def with_labels(value) -> dict:
    return {**BATCH, b"labels": value}


def npz(write, memory: int | None = None, **load):
    """A .npz path written by `write(path)` (a dict of arrays is np.savez'd)."""
    def build(tmp: Path, mp):
        path = tmp / "d.npz"
        if isinstance(write, dict):
            np.savez(path, **write)
        else:
            write(path)
        if memory is not None:
            limit_memory(mp, memory)
        return {"name": "npz", "root": str(path), **load}, str(path)
    return build


def good_npz(path: Path) -> bytes:
    rng = np.random.default_rng(0)
    np.savez_compressed(path, x=rng.integers(0, 256, (4, 16, 16), dtype=np.uint8))
    return path.read_bytes()


def cut(fraction: float):
    return lambda p: p.write_bytes(good_npz(p)[:int(len(good_npz(p)) * fraction)])


def flip_middle(p: Path) -> None:
    data = bytearray(good_npz(p))
    data[len(data) // 2] ^= 0xFF  # inside the deflated x.npy
    p.write_bytes(bytes(data))


def member(name: str, content: bytes):
    def write(p: Path):
        with zipfile.ZipFile(p, "w") as z:
            z.writestr(name, content)
    return write


def npy_header(shape, descr="|u1") -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - len(header) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(w: int, h: int) -> bytes:
    """A tiny PNG whose header claims w x h grayscale pixels."""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def real_png(mode: str = "RGB", fmt: str = "PNG") -> bytes:

    from PIL import Image

    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).convert(mode).save(
        buf, format=fmt)
    return buf.getvalue()


def folder(files: dict[str, bytes | None], bad: str = "", memory: int | None = None):
    """An image folder: {relative path: bytes, or None for a folder}; `bad` names the culprit
    relative to the root."""
    def build(tmp: Path, mp):
        root = tmp / "imgs"
        root.mkdir()
        for rel, content in files.items():
            path = root / rel
            if content is None:
                path.mkdir(parents=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
        if memory is not None:
            limit_memory(mp, memory)
        return {"name": "imagefolder", "root": str(root)}, str(root / bad)
    return build


def image_size(value):
    def build(tmp: Path, mp):
        np.savez(tmp / "d.npz", x=X4)
        return {"name": "npz", "root": str(tmp / "d.npz"), "image_size": value}, "data.image_size"
    return build


def root_is_file(tmp: Path, mp):
    (tmp / "a.png").write_bytes(real_png())
    return {"name": "imagefolder", "root": str(tmp / "a.png")}, str(tmp / "a.png")


def missing(module: str, dataset: str, package: str):
    def build(tmp: Path, mp):
        mp.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
        root = None
        if dataset == "imagefolder":
            root = tmp / "imgs"
            (root / "c").mkdir(parents=True)
            (root / "c" / "a.png").write_bytes(b"")
        return {"name": dataset, "root": root and str(root)}, package
    return build


def broken_loader(module: str, function: str, dataset: str):
    """A built-in dataset whose bundled data file is unreadable (a damaged install); stand-in
    modules, so the test neither needs nor imports the real (slow to import) package."""
    def build(tmp: Path, mp):
        def fail(*args, **kwargs):
            raise OSError(f"[Errno 5] Input/output error: {tmp / 'bundled.csv.gz'}")
        parent, child = types.ModuleType(module.split(".")[0]), types.ModuleType(module)
        setattr(child, function, fail)
        mp.setitem(sys.modules, parent.__name__, parent)
        mp.setitem(sys.modules, module, child)
        return {"name": dataset, "root": None}, str(tmp / "bundled.csv.gz")
    return build


def fashion(images: bytes | None = None, gz: bool = True, compress: bool = True):
    def build(tmp: Path, mp):
        idx(images, gz=gz, compress=compress)(tmp, mp)
        bad = tmp / "idx" / ("train-images-idx3-ubyte" + (".gz" if gz else ""))
        return {"name": "fashion-mnist", "root": str(tmp / "idx")}, str(bad)
    return build


