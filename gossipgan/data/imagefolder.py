"""The ``imagefolder`` loader (layout in `gossipgan.data.files`): one sub-folder per class.

Headers are read first: every file must be a PNG or JPEG of at most `MAX_SOURCE_PIXELS`
pixels, and the resized dataset must fit in memory, before any image is decoded.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from gossipgan.data.checks import (
    MAX_SOURCE_PIXELS,
    bad,
    check_image_size,
    check_memory,
    describe,
)
from gossipgan.data.files import Loaded, need_dir, uint8_to_unit
from gossipgan.errors import ConfigError

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_LAYOUT = "root/<class_name>/*.png|*.jpg|*.jpeg"
# Only these decoders: a file named .png that is really EPS, TIFF, ... is refused, so no other
# PIL plugin (EPS would start Ghostscript) ever sees it. The JPEG opener also hands back
# multi-picture (MPO) JPEGs from cameras.
_FORMATS = ("PNG", "JPEG")


def load_imagefolder(root: Path, image_size: int) -> Loaded:
    """One sub-folder per class of PNG/JPEG files (see `gossipgan.data.files`)."""
    try:
        from PIL import Image
    except ImportError as err:
        raise bad("dataset 'imagefolder' needs Pillow: pip install pillow") from err

    check_image_size(image_size)
    need_dir(root, _LAYOUT)
    classes = sorted(p.name for p in _listdir(root) if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise bad(f"{root} has no class sub-folders; expected {_LAYOUT}")
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        found = sorted(p for p in _listdir(root / name)
                       if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file())
        if not found:
            raise bad(f"class folder {root / name} has no .png/.jpg/.jpeg images; expected "
                      f"{_LAYOUT}")
        files += [(p, label) for p in found]
    # uint8 stack of the resized images, then its float32 copy
    check_memory(len(files) * image_size ** 2 * 3 * 5,
                 f"{len(files)} images of {root} at {image_size}x{image_size}")
    modes = [_open(Image, path, header_only=True) for path, _ in files]
    mode = "L" if all(m == "L" for m in modes) else "RGB"
    arrays = [_open(Image, path, mode=mode, size=image_size) for path, _ in files]
    x = np.stack(arrays)
    x = x[:, None] if mode == "L" else x.transpose(0, 3, 1, 2)
    y = torch.tensor([label for _, label in files], dtype=torch.int64)
    return uint8_to_unit(np.ascontiguousarray(x)), y, tuple(classes)


def _listdir(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError as err:  # unreadable folder
        raise bad(f"cannot list folder {folder}: {describe(err)}") from err


def _open(Image, path: Path, header_only: bool = False, mode: str = "L", size: int = 32):
    """The image's mode (header_only) or its pixels converted and resized, as uint8."""
    try:
        with warnings.catch_warnings():
            # PIL only warns between 1x and 2x its own pixel limit; make that an error too
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=_FORMATS) as img:
                w, h = img.size
                if w * h > MAX_SOURCE_PIXELS:
                    raise bad(f"image {path} claims {w}x{h} pixels; at most "
                              f"{MAX_SOURCE_PIXELS} (8192x8192) are decoded")
                if header_only:
                    return img.mode
                img = img.convert(mode).resize((size, size), Image.BILINEAR)
                return np.asarray(img, dtype=np.uint8)
    except ConfigError:
        raise
    except Image.UnidentifiedImageError as err:
        raise bad(f"cannot read image {path}: not a PNG or JPEG file") from err
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise bad(f"image {path} is too large to decode (at most {MAX_SOURCE_PIXELS} pixels): "
                  f"{describe(err)}") from err
    except Exception as err:  # noqa: BLE001 - PIL decoders raise OSError, SyntaxError, ...
        raise bad(f"cannot read image {path}: {describe(err)}") from err
