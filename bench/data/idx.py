"""The idx format of MNIST and its relatives, and any folder of such files as a dataset.

A folder holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each gzipped or not) is a
dataset: ``--dataset idx:PATH``, named after the folder, with its test split corrupted by
the 15 MNIST-C corruptions. Fashion-MNIST and KMNIST ship in exactly this form.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from bench.data.dataset import Dataset, Split
from bench.errors import BenchError

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# The idx type codes and their big-endian numpy types.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (gzipped or not), checking the magic number, the dimensions and the length."""
    raw = Path(path).read_bytes()
    if not raw:
        raise BenchError(f"{path} is empty (0 bytes); fetch it again")
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except EOFError:
            raise BenchError(f"{path} is a truncated gzip stream (it ends before its end marker); fetch it again") from None
        except (OSError, zlib.error) as error:
            raise BenchError(f"{path} is a damaged gzip file ({error}); fetch it again") from None
    elif Path(path).suffix == ".gz":
        raise BenchError(f"{path} is not gzip-compressed although its name ends in .gz; fetch it again")
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in IDX_TYPES or raw[3] == 0:
        raise BenchError(
            f"{path} is not an idx file: its magic number is {raw[:4].hex() or 'missing'}, "
            f"expected 0000 followed by a type code ({', '.join(f'{c:02x}' for c in IDX_TYPES)}) and a number of dimensions"
        )
    ndim, dtype = raw[3], np.dtype(IDX_TYPES[raw[2]])
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise BenchError(f"{path} is truncated inside its header; fetch it again")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise BenchError(
            f"{path} has {len(raw)} bytes but its header announces {'x'.join(map(str, shape))} values, "
            f"{expected} bytes in all: the file is {'truncated' if len(raw) < expected else 'too long'}; fetch it again"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def idx_path(folder: Path, key: str) -> Path:
    """The file for ``key`` in ``folder``: the gzipped one when present, else the plain one."""
    for name in (IDX_FILES[key] + ".gz", IDX_FILES[key]):
        if (folder / name).is_file():
            return folder / name
    raise BenchError(f"{folder} has no {IDX_FILES[key]}[.gz]; an idx dataset folder holds {', '.join(IDX_FILES.values())}")


def read_idx_folder(folder: Path) -> tuple[Split, Split]:
    """The train and test splits of a folder of the four idx files, with their shapes checked."""
    arrays = {key: read_idx(idx_path(folder, key)) for key in IDX_FILES}
    splits = []
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.ndim != 3:
            raise BenchError(f"{idx_path(folder, f'{part}_images')} holds an array of shape {images.shape}; "
                             "images must be (n, height, width)")
        if labels.ndim != 1 or len(labels) != len(images):
            raise BenchError(f"{idx_path(folder, f'{part}_labels')} holds {labels.shape} labels for {len(images)} images; "
                             "labels must be (n,) with one per image")
        if len(labels) and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0):
            raise BenchError(f"{idx_path(folder, f'{part}_labels')} holds labels of type {labels.dtype} from "
                             f"{labels.min()} to {labels.max()}; labels must be class numbers 0, 1, 2, ...")
        splits.append(Split(images, labels.astype(np.int64)))
    if splits[0].inputs.shape[1:] != splits[1].inputs.shape[1:]:
        raise BenchError(f"{folder}: train images are {splits[0].inputs.shape[1:]} but test images {splits[1].inputs.shape[1:]}")
    return splits[0], splits[1]


def load_idx_dataset(folder: Path, roots: list[Path]) -> Dataset:
    """A folder of idx files as a dataset named after the folder, with its corrupted test splits (made when first used)."""
    from bench.data.corrupted import fingerprint, lazy_corrupted_splits

    if not folder.is_dir():
        raise BenchError(f"idx dataset folder {folder} does not exist; give --dataset idx:PATH with PATH a folder of idx files")
    train, test = read_idx_folder(folder)
    name = folder.resolve().name
    ood, source = lazy_corrupted_splits(name, test, roots)
    n_classes = int(max(train.labels.max(), test.labels.max())) + 1
    content = fingerprint(np.concatenate([train.inputs.ravel(), test.inputs.ravel(), train.labels.astype(np.uint8), test.labels.astype(np.uint8)]))
    return Dataset(name, n_classes, train, test, ood, source=f"idx folder {name} (content md5 {content}); {source}")
