"""``npy:DIR``: a dataset larger than memory, as a folder of ``.npy`` files whose images are never read whole.

The folder holds the arrays of an npz dataset (``bench.data.arrays``), one file each: ``x_train.npy``,
``y_train.npy``, ``x_test.npy``, ``y_test.npy``, and optionally ``ood_<name>.npy`` (with ``ood_<name>_labels.npy``),
``classes.npy`` and ``mislabeled.npy``. Images are memory-mapped (``numpy.load(mmap_mode="r")``), and training and
the probe read them a batch at a time from the file (``bench.data.filerows``), so a process holds a batch of them,
not the split. Labels and flags are read whole (8 bytes an image).

Nothing is converted, since a conversion would read the images whole: they must be stored as bench keeps images,
uint8 pixel intensities or float32, ``(n, h, w)`` for one channel or ``(n, 3, h, w)`` for colour. Write one larger
than memory a chunk at a time with ``numpy.lib.format.open_memmap``. The dataset's identity is the SHA-256 of the
arrays, read a chunk at a time (float images are checked to be finite on the way). A relative ``DIR`` is looked
for in the working folder, then in each data root.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.arrays import as_flags, as_labels, refuse_empty_or_mixed_scales, refuse_untrained_classes
from bench.data.dataset import Dataset, Split
from bench.data.filerows import FileRows
from bench.errors import BenchError

REQUIRED = ("x_train", "y_train", "x_test", "y_test")
DIGEST_CHUNK = 16 * 2**20  # bytes of images read at once for the digest


def load_npy(path: Path, roots: list[Path]) -> Dataset:
    """``npy:DIR``: the module docstring's folder, named after it."""
    folder = _found(path, roots)
    arrays = {file.stem: file for file in sorted(folder.glob("*.npy"))}
    missing = [name for name in REQUIRED if name not in arrays]
    if missing:
        raise BenchError(f"{folder} has no {', '.join(f'{name}.npy' for name in missing)}; an npy dataset folder holds "
                         f"{', '.join(f'{name}.npy' for name in REQUIRED)} (it holds {', '.join(arrays) or 'none'})")
    ood = sorted(name[4:] for name in arrays if name.startswith("ood_") and not name.endswith("_labels"))
    orphans = sorted({name[4:-7] for name in arrays if name.startswith("ood_") and name.endswith("_labels")} - set(ood))
    if orphans:
        raise BenchError(f"{folder} has ood_{orphans[0]}_labels.npy but no ood_{orphans[0]}.npy")
    images = {name: _images(arrays[name]) for name in ["x_train", "x_test", *(f"ood_{split}" for split in ood)]}
    refuse_empty_or_mixed_scales(images)
    shapes = {name: array.shape[1:] for name, array in images.items()}
    if len(set(shapes.values())) > 1:
        raise BenchError(f"{folder}: the images differ in shape ({', '.join(f'{n} {s}' for n, s in shapes.items())}); "
                         "every split must have the training images' shape")
    classes = [str(c) for c in _small(arrays["classes"])] if "classes" in arrays else None
    n_classes = len(classes) if classes else None

    def labels(name: str, n: int) -> np.ndarray:
        return as_labels(_small(arrays[name]), f"{name}.npy", n, n_classes)

    flags = as_flags(_small(arrays["mislabeled"]), "mislabeled.npy", len(images["x_train"])) if "mislabeled" in arrays else None
    train = Split(images["x_train"], labels("y_train", len(images["x_train"])), noisy=flags)
    test = Split(images["x_test"], labels("y_test", len(images["x_test"])))
    trained = np.unique(train.labels)
    refuse_untrained_classes(test.labels, "y_test.npy", trained)
    splits = {}
    for split in ood:
        known = f"ood_{split}_labels" in arrays
        split_labels = labels(f"ood_{split}_labels", len(images[f"ood_{split}"])) if known \
            else np.full(len(images[f"ood_{split}"]), -1, dtype=np.int64)
        if known:
            refuse_untrained_classes(split_labels, f"ood_{split}_labels.npy", trained)
        splits[split] = Split(images[f"ood_{split}"], split_labels)
    digest = hashlib.sha256()
    for name, array in images.items():
        _digest_rows(digest, array, f"{folder / name}.npy")
    for array in (train.labels, test.labels, *(s.labels for s in splits.values()), *([] if flags is None else [flags])):
        digest.update(str((array.dtype, array.shape)).encode() + array.tobytes())
    n_classes = n_classes or int(max(train.labels.max(initial=0), test.labels.max(initial=0))) + 1
    kinds = {split: "semantic" if (s.labels < 0).all() else "covariate" for split, s in splits.items()}
    return Dataset(folder.name, n_classes, train, test, splits,
                   source=f"npy folder {folder.name} (content sha256 {digest.hexdigest()[:32]})",
                   classes=tuple(classes or ()), ood_kinds=kinds)


def _found(path: Path, roots: list[Path]) -> Path:
    for folder in [path, *([] if path.is_absolute() else [root / path for root in roots])]:
        if folder.is_dir():
            return folder
    where = "" if path.is_absolute() else f" (nor in the data roots {', '.join(map(str, roots))})"
    raise BenchError(f"npy folder {path} does not exist{where}; give --dataset npy:DIR with DIR a folder of x_train.npy, "
                     "y_train.npy, x_test.npy and y_test.npy")


def _images(file: Path) -> np.memmap:
    """The images of ``file``, memory-mapped, refused unless stored as bench keeps images (the module docstring)."""
    try:
        images = np.load(file, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise BenchError(f"{file} is not a readable .npy ({error}); write it with numpy.save or "
                         "numpy.lib.format.open_memmap") from None
    layout_ok = images.ndim == 3 or (images.ndim == 4 and images.shape[1] == 3)
    if images.dtype not in (np.uint8, np.float32) or not layout_ok or not isinstance(images, np.memmap) \
            or not images.flags.c_contiguous:
        raise BenchError(f"{file} holds {images.dtype} images of shape {images.shape}; an npy dataset's images are read "
                         "as they are stored, so store them C-ordered as uint8 (0-255) or float32, (n, h, w) for one "
                         "channel or (n, 3, h, w) for colour (e.g. np.save(path, x.transpose(0, 3, 1, 2)) for "
                         "(n, h, w, 3) images)")
    return images


def _small(file: Path) -> np.ndarray:
    try:
        return np.load(file, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise BenchError(f"{file} is not a readable .npy of numbers or strings ({error})") from None


def _digest_rows(digest: Any, images: np.memmap, what: str) -> None:
    """Fold ``images`` into ``digest`` a chunk at a time, read from their file; float images must be finite."""
    rows = FileRows.of(images)
    digest.update(str((images.dtype, images.shape)).encode())
    step = max(1, DIGEST_CHUNK // max(1, images.itemsize * int(np.prod(images.shape[1:]))))
    for start in range(0, len(rows), step):
        chunk = rows[start:start + step]
        if chunk.dtype == np.float32 and not np.isfinite(chunk).all():
            raise BenchError(f"{what} holds NaN or infinite values (among rows {start}-{start + len(chunk) - 1}); "
                             "images must be finite")
        digest.update(memoryview(chunk).cast("B"))
