"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009) from the official binary version, and CIFAR-10-C / -100-C.

``cifar10:PATH``, ``cifar100:PATH`` (fine labels) and ``cifar100-coarse:PATH`` (the 20
superclasses) take the binary archive (``cifar-10-binary.tar.gz``, ``cifar-100-binary.tar.gz``),
checked against its published MD5, or the folder it unpacks to (or a folder holding that one),
whose files are checked by size and label range (the authors publish no per-file checksum).
An archive is read member by member without extracting anything: only the expected members
are read, each must be a regular file of exactly the expected size, so links, paths leaving
the folder and oversized members are refused or never touched. The "python version" of CIFAR
is pickled and is refused: nothing is ever unpickled.

The corrupted test splits of Hendrycks & Dietterich (ICLR 2019) are read when their official
folder (``CIFAR-10-C/`` or ``CIFAR-100-C/``: ``<corruption>.npy`` holding 5 severities x 10,000
images, and ``labels.npy``) is in a data root or beside PATH; each severity is a split named
``<corruption>@<severity>``.
"""

from __future__ import annotations

import hashlib
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.data import Dataset, Split, dataset_prefix
from bench.data.arrays import content_digest
from bench.errors import BenchError

PIXELS = 3 * 32 * 32
SEVERITIES = 5
PYTHON_FOLDERS = ("cifar-10-batches-py", "cifar-100-python")  # the pickled releases, refused


@dataclass(frozen=True)
class Layout:
    """What one CIFAR release holds: its archive, folder, files and record counts."""

    title: str
    archive: str
    md5: str
    folder: str
    train: dict[str, int]  # file -> records
    test: dict[str, int]
    label_bytes: int  # bytes before the pixels of a record
    label_byte: int  # which of them is the label
    n_classes: int
    names: str  # the file of class names, one per line
    corrupted: str  # the folder of the corrupted test splits

    @property
    def record(self) -> int:
        return self.label_bytes + PIXELS


CIFAR10 = Layout("CIFAR-10", "cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530", "cifar-10-batches-bin",
                 {f"data_batch_{i}.bin": 10000 for i in range(1, 6)}, {"test_batch.bin": 10000}, 1, 0, 10,
                 "batches.meta.txt", "CIFAR-10-C")
CIFAR100 = Layout("CIFAR-100", "cifar-100-binary.tar.gz", "03b5dce01913d631647c71ecec9e9cb8", "cifar-100-binary",
                  {"train.bin": 50000}, {"test.bin": 10000}, 2, 1, 100, "fine_label_names.txt", "CIFAR-100-C")
CIFAR100_COARSE = Layout(**{**CIFAR100.__dict__, "title": "CIFAR-100 (coarse labels)", "label_byte": 0,
                            "n_classes": 20, "names": "coarse_label_names.txt"})


def _md5(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "md5").hexdigest()


def _archive_members(path: Path, layout: Layout) -> dict[str, bytes]:
    """The expected files of the archive (and its names file, when there), read without extracting."""
    wanted = {**layout.train, **layout.test}
    digest = _md5(path)
    try:
        with tarfile.open(path, "r:gz") as archive:
            members = {member.name: member for member in archive.getmembers()}
            if any(name.split("/")[0] in PYTHON_FOLDERS for name in members):
                raise BenchError(f"{path} is the python version of {layout.title}, which is pickled and is never "
                                 f"read; use the binary version, {layout.archive}")
            if digest != layout.md5:
                raise BenchError(f"{path}: MD5 {digest} differs from the published {layout.md5} of {layout.archive}; "
                                 "the archive is not the original")
            files = {}
            for name in [*wanted, layout.names]:
                member = members.get(f"{layout.folder}/{name}")
                if member is None:
                    if name == layout.names:
                        continue
                    raise BenchError(f"{path} has no member {layout.folder}/{name}; is it {layout.archive}?")
                expected = wanted[name] * layout.record if name in wanted else member.size
                if not member.isreg() or member.size != expected:
                    raise BenchError(f"{path}: member {member.name} is {'not a regular file' if not member.isreg() else f'{member.size} bytes'}"
                                     f"; expected a regular file of {expected} bytes, so the archive is refused")
                files[name] = archive.extractfile(member).read(expected)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise BenchError(f"{path}: MD5 {digest} differs from the published {layout.md5}, and the archive cannot be "
                         f"read ({type(error).__name__}: {error}): it is truncated or damaged; fetch it again") from None
    return files


def _folder_files(path: Path, layout: Layout) -> dict[str, bytes]:
    folder = path / layout.folder if (path / layout.folder).is_dir() else path
    if folder.name in PYTHON_FOLDERS or any((folder / name).is_dir() for name in PYTHON_FOLDERS) and \
            not (folder / next(iter(layout.train))).is_file():
        raise BenchError(f"{path} holds the python version of {layout.title}, which is pickled and is never read; "
                         f"use the binary version, {layout.archive}")
    files = {}
    for name, records in {**layout.train, **layout.test}.items():
        file = folder / name
        if not file.is_file():
            raise BenchError(f"{folder} has no {name}; a {layout.title} folder holds "
                             f"{', '.join({**layout.train, **layout.test})} (unpack {layout.archive}, or give the archive)")
        size = file.stat().st_size
        if size != records * layout.record:
            raise BenchError(f"{file} has {size} bytes; the official file holds {records} records of {layout.record} "
                             f"bytes ({records * layout.record}): it is truncated or not the original")
        files[name] = file.read_bytes()
    if (folder / layout.names).is_file():
        files[layout.names] = (folder / layout.names).read_bytes()
    return files


def _split(files: dict[str, bytes], names: dict[str, int], layout: Layout) -> Split:
    records = np.concatenate([np.frombuffer(files[name], np.uint8).reshape(-1, layout.record) for name in names])
    labels = records[:, layout.label_byte].astype(np.int64)
    if labels.max() >= layout.n_classes:
        raise BenchError(f"{', '.join(names)} holds labels up to {labels.max()}; {layout.title} has {layout.n_classes} "
                         "classes: the files are damaged")
    return Split(records[:, layout.label_bytes:].reshape(-1, 3, 32, 32), labels)


def read_cifar(path: Path, layout: Layout) -> tuple[Split, Split, tuple[str, ...], str]:
    """Train and test splits, class names and provenance, from the archive or folder at ``path``."""
    if not path.exists():
        raise BenchError(f"{path} does not exist; give the path of {layout.archive} or of the folder it unpacks to")
    files = _archive_members(path, layout) if path.is_file() else _folder_files(path, layout)
    names = tuple(line.strip() for line in files.get(layout.names, b"").decode().splitlines() if line.strip())
    train, test = _split(files, layout.train, layout), _split(files, layout.test, layout)
    source = (f"{layout.title} binary archive (MD5-verified)" if path.is_file() else
              f"{layout.title} binary files (sizes checked; content sha256 "
              f"{content_digest(*(np.frombuffer(files[name], np.uint8) for name in {**layout.train, **layout.test}))})")
    return train, test, names if len(names) == layout.n_classes else (), source


def read_corrupted(folder: Path, test: Split, layout: Layout) -> dict[str, Split]:
    """Every ``<corruption>@<severity>`` split of the official folder, checked against the clean test split."""
    labels_file = folder / "labels.npy"
    n = len(test)
    try:
        labels = np.load(labels_file, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise BenchError(f"cannot read {labels_file} ({error}); {folder} should hold the official "
                         f"{layout.corrupted} files") from None
    if labels.shape != (SEVERITIES * n,) or not (labels.reshape(SEVERITIES, n) == test.labels).all():
        raise BenchError(f"{labels_file} holds {labels.shape} labels that are not the {layout.title} test labels "
                         f"repeated for {SEVERITIES} severities; the folder belongs to another dataset or is damaged")
    splits = {}
    for file in sorted(folder.glob("*.npy")):
        if file.name == "labels.npy":
            continue
        images = np.load(file, mmap_mode="r", allow_pickle=False)
        if images.shape != (SEVERITIES * n, 32, 32, 3) or images.dtype != np.uint8:
            raise BenchError(f"{file} holds {images.dtype} {images.shape}; a {layout.corrupted} file holds uint8 "
                             f"({SEVERITIES * n}, 32, 32, 3): {SEVERITIES} severities x {n} images")
        for severity in range(1, SEVERITIES + 1):
            block = images[(severity - 1) * n:severity * n]
            splits[f"{file.stem}@{severity}"] = Split(np.ascontiguousarray(block.transpose(0, 3, 1, 2)), test.labels)
    return splits


def load(path: Path, roots: list[Path], layout: Layout, name: str) -> Dataset:
    train, test, classes, source = read_cifar(path, layout)
    ood = {}
    for folder in [path.parent / layout.corrupted, *(root / layout.corrupted for root in roots)]:
        if (folder / "labels.npy").is_file():
            ood = read_corrupted(folder, test, layout)
            source += f"; corruptions: official {layout.corrupted} files"
            break
    return Dataset(name, layout.n_classes, train, test, ood, source=source, classes=classes)


@dataset_prefix("cifar10")
def load_cifar10(path: Path, roots: list[Path]) -> Dataset:
    return load(path, roots, CIFAR10, "cifar10")


@dataset_prefix("cifar100")
def load_cifar100(path: Path, roots: list[Path]) -> Dataset:
    return load(path, roots, CIFAR100, "cifar100")


@dataset_prefix("cifar100-coarse")
def load_cifar100_coarse(path: Path, roots: list[Path]) -> Dataset:
    return load(path, roots, CIFAR100_COARSE, "cifar100-coarse")
