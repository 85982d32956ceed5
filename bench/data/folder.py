"""``folder:PATH``: image files in one folder per class, read with Pillow.

```
PATH/train/<class>/*.png|jpg|jpeg|bmp|gif|tif|tiff|webp
PATH/test/<class>/...
```

The classes are the training split's folder names, sorted, and are kept with the dataset.
Every image of the dataset must have one size and one mode: ``L`` (grayscale) or ``RGB``;
anything else is refused with the file that differs, never converted silently. Files whose
name starts with a dot are ignored (``.DS_Store``); any other file that is not an image is
refused, and so is anything that is not a regular file (a FIFO, socket, device or folder),
before it is opened: opening a FIFO would wait forever for a writer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.data.dataset import Dataset
from bench.data.arrays import from_arrays, with_corruptions
from bench.errors import BenchError

SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
MODES = ("L", "RGB")


def _read(path: Path) -> tuple[np.ndarray, tuple[str, tuple[int, int]]]:
    """The pixels of one image file, and its mode and size."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise BenchError(f"{path} is not a regular file (a FIFO, socket, device or folder); a class folder holds image "
                         "files only: move it out")
    if path.suffix.lower() not in SUFFIXES:
        raise BenchError(f"{path} is not an image file ({path.suffix or 'no suffix'}); a class folder holds "
                         f"{', '.join(sorted(SUFFIXES))} files only: move it out")
    try:
        with Image.open(path) as image:
            image.load()
            kind, pixels = (image.mode, image.size), np.asarray(image)
    except (UnidentifiedImageError, OSError) as error:
        raise BenchError(f"{path} cannot be read as an image ({error}); replace or remove it") from None
    if kind[0] not in MODES:
        raise BenchError(f"{path} has mode {kind[0]}; images must be L (grayscale) or RGB: convert the folder first, "
                         "e.g. with Pillow's Image.convert")
    return pixels, kind


def _read_all(files: list[Path], expected: tuple[str, tuple[int, int]]) -> np.ndarray:
    images = []
    for file in files:
        pixels, kind = _read(file)
        if kind != expected:
            raise BenchError(f"{file} is a {kind[1][0]}x{kind[1][1]} {kind[0]} image but the folder's first image is a "
                             f"{expected[1][0]}x{expected[1][1]} {expected[0]} one; every image must have one size and mode")
        images.append(pixels)
    return np.stack(images)


def _split(folder: Path, classes: list[str] | None) -> tuple[list[np.ndarray], list[int], list[str]]:
    if not folder.is_dir():
        raise BenchError(f"{folder} does not exist; an image-folder dataset holds train/<class>/ and test/<class>/")
    found = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    classes = classes or found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise BenchError(f"{folder / unknown[0]} is a class that the training split does not have "
                         f"(its classes: {', '.join(classes)}); rename or remove it")
    images, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (folder / name).iterdir() if not p.name.startswith(".")) if (folder / name).is_dir() else []
        if not files and folder.name == "train":
            raise BenchError(f"class folder {folder / name} is empty; give every class at least one image, or remove it")
        images += [folder / name / file.name for file in files]
        labels += [label] * len(files)
    return images, labels, classes


def load_folder(path: Path, roots: list[Path]) -> Dataset:
    """The train and test splits of an image folder, named after it."""
    if not path.is_dir():
        raise BenchError(f"image folder {path} does not exist; give --dataset folder:PATH with PATH holding "
                         "train/<class>/ and test/<class>/")
    train_files, train_labels, classes = _split(path / "train", None)
    test_files, test_labels, _ = _split(path / "test", classes)
    if not test_files:
        raise BenchError(f"{path / 'test'} holds no images; the test split needs at least one")
    _, expected = _read(train_files[0])
    train, test = _read_all(train_files, expected), _read_all(test_files, expected)
    return from_arrays(path.resolve().name, train, np.array(train_labels), test, np.array(test_labels),
                       classes=classes, layout="nhwc" if train.ndim == 4 else None, origin=f"image folder {path.resolve().name}")


def load_folder_c(path: Path, roots: list[Path]) -> Dataset:
    """``folder-c:PATH``: the image folder with the corrupted copies of its test split added."""
    return with_corruptions(load_folder(path, roots), roots)
