"""``images:DIR``: one sub-folder per class, the folder name being the label.

    DIR/cat/001.png
    DIR/dog/a.jpg

Every image is decoded once, converted to RGB or greyscale (``data.image_mode``), resized to
``data.image_size`` (height, width) and kept as float32 values 0..255 in one
(N, C, H, W) array. Files are read in sorted order, so a seed gives the same split on every
machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from tunelab.config import DataConfig
from tunelab.data.base import RawData
from tunelab.errors import ConfigError, DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_PIL_MODES = {"rgb": "RGB", "grayscale": "L", "RGB": "RGB", "L": "L"}
# Report at most this many unreadable files; the rest are counted.
_SHOWN_BAD_FILES = 10


def load_images(value: str, cfg: DataConfig, *, field: str = "data.source") -> RawData:
    """A folder of class folders of images (see the module docstring)."""
    if cfg.modality not in ("auto", "image"):
        raise ConfigError(
            f"data.modality: got {cfg.modality!r}, but images: sources give images; set it "
            "to auto or image"
        )
    root = image_root(value, field=field)
    files, labels = class_files(root)
    inputs = load_image_files(files, size=cfg.image_size, mode=cfg.image_mode)
    return RawData(
        modality="image", inputs=inputs, target=np.array(labels, dtype=object), origin=str(root)
    )


def image_root(value: str, *, field: str) -> Path:
    """The folder of an ``images:DIR`` source, which must exist."""
    root = Path(value).expanduser()
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise DataError(
            f"{field}: images:{value} {what} (looked at {root.absolute()}); point it at a "
            "folder holding one sub-folder of images per class"
        )
    return root


def image_files(folder: Path) -> list[Path]:
    """The image files under ``folder`` (any depth, hidden files skipped), sorted."""
    found = [
        path
        for path in folder.rglob("*")
        if path.is_file()
        and path.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    ]
    return sorted(found, key=lambda path: path.relative_to(folder).as_posix())


def load_image_files(paths: Sequence[Path], *, size: tuple[int, int], mode: str) -> np.ndarray:
    """Decode, convert and resize images into one float32 array (N, C, H, W), values 0..255.

    Args:
        paths: the image files, in the order of the rows wanted.
        size: (height, width) of every output image.
        mode: ``rgb`` (3 channels) or ``grayscale`` (1); PIL's ``RGB`` and ``L`` work too.

    Raises:
        DataError: a file cannot be read as an image (every such file is named).

    Example::

        batch = load_image_files([Path("new/1.png")], size=(32, 32), mode="rgb")
    """
    if mode not in _PIL_MODES:
        raise ConfigError(f"data.image_mode: got {mode!r}; valid: rgb, grayscale (or PIL's RGB, L)")
    pil_mode = _PIL_MODES[mode]
    height, width = size
    channels = 3 if pil_mode == "RGB" else 1
    out = np.empty((len(paths), channels, height, width), dtype=np.float32)
    bad: list[str] = []
    for row, path in enumerate(paths):
        try:
            pixels = _decode(path, pil_mode=pil_mode, width=width, height=height)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            bad.append(f"{path} ({type(exc).__name__}: {exc})")
            continue
        out[row] = pixels.reshape(height, width, channels).transpose(2, 0, 1)
    if bad:
        shown = "; ".join(bad[:_SHOWN_BAD_FILES])
        more = f"; and {len(bad) - _SHOWN_BAD_FILES} more" if len(bad) > _SHOWN_BAD_FILES else ""
        raise DataError(
            f"{len(bad)} image file(s) cannot be read: {shown}{more}. Remove those files or "
            "replace them with readable images"
        )
    return out


def _decode(path: Path, *, pil_mode: str, width: int, height: int) -> np.ndarray:
    with Image.open(path) as opened:
        image: Image.Image = opened
        # Palette images with a transparent colour convert cleanly only through RGBA.
        if image.mode == "P" and "transparency" in image.info:
            image = image.convert("RGBA")
        converted = image.convert(pil_mode)
        if converted.size != (width, height):
            # PIL sizes are (width, height); the config's are (height, width).
            converted = converted.resize((width, height), Image.Resampling.BILINEAR)
        return np.asarray(converted, dtype=np.float32)


def class_files(root: Path) -> tuple[list[Path], list[str]]:
    classes = sorted(
        path for path in root.iterdir() if path.is_dir() and not path.name.startswith(".")
    )
    example = f"{root}/cat/001.png and {root}/dog/001.png"
    if len(classes) < 2:
        found = f"only the class folder {classes[0].name!r}" if classes else "no class folders"
        raise DataError(
            f"{root}: found {found}; an images: source needs one sub-folder per class and at "
            f"least two classes, e.g. {example}"
        )
    files: list[Path] = []
    labels: list[str] = []
    empty: list[str] = []
    for folder in classes:
        found_files = image_files(folder)
        if not found_files:
            empty.append(folder.name)
        files.extend(found_files)
        labels.extend([folder.name] * len(found_files))
    if empty:
        raise DataError(
            f"{root}: the class folder(s) {', '.join(repr(n) for n in empty)} hold no images "
            f"(looked for {', '.join(IMAGE_SUFFIXES)}); add images to them or remove the "
            "folders"
        )
    return files, labels
