"""MNIST (LeCun et al. 1998): the four original idx files, MD5-verified, and MNIST-C on top.

``mnist`` is the clean dataset; ``mnist-c`` adds the 15 corrupted copies of its test split
(official files when present, otherwise generated, see ``bench.data.corrupted``).
``fetch`` downloads the files from the usual public mirrors (with pooch), or copies them from a folder.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pooch
import requests

from bench.data.dataset import Dataset, Split
from bench.data.corrupted import candidate_folders, lazy_corrupted_splits, read_corrupted
from bench.data.idx import IDX_FILES, read_idx, read_idx_folder
from bench.errors import BenchError
from bench.files import write_atomically

# The published MD5 of each file, gzipped as distributed and decompressed.
MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
DOWNLOADS = [f"{name}.gz" for name in IDX_FILES.values()]
MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]


def md5(path: Path) -> str:
    """The hex MD5 of the file at ``path``."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "md5").hexdigest()


def check_file(path: Path) -> str:
    """Why ``path`` is not the published MNIST file, or "" when it is; past the MD5, what is wrong when it can be told."""
    if not path.is_file():
        return "missing"
    digest = md5(path)
    if digest == MD5[path.name]:
        return ""
    problem = f"MD5 {digest} differs from the published {MD5[path.name]}"
    try:
        values = read_idx(path)
    except BenchError as error:  # "<path> is ...; fetch it again": keep what is wrong
        return f"{problem}; the file {str(error).removeprefix(f'{path} ').split('; fetch it again')[0]}"
    expected = {"train-images": (60000, 28, 28), "train-labels": (60000,), "t10k-images": (10000, 28, 28),
                "t10k-labels": (10000,)}[path.name[:path.name.index("-idx")]]
    if values.shape != expected:
        return f"{problem}; the file holds an array of shape {values.shape}, MNIST's is {expected}"
    if values.ndim == 1 and (values.min() < 0 or values.max() > 9):
        return f"{problem}; the file holds labels from {values.min()} to {values.max()}, MNIST's are 0 to 9"
    return f"{problem}; the file is a well-formed idx file of the right shape, but not the original"


def mnist_folder(roots: list[Path]) -> Path:
    """The first ``<root>/mnist`` holding the four files (gzipped or not)."""
    missing = {}  # folder -> the files it lacks, for folders that hold some
    for root in roots:
        folder = root / "mnist"
        lacking = [n for n in IDX_FILES.values() if not ((folder / f"{n}.gz").is_file() or (folder / n).is_file())]
        if not lacking:
            return folder
        if len(lacking) < len(IDX_FILES):
            missing[folder] = lacking
    partial = "".join(f"; {folder} lacks {', '.join(f'{n}[.gz]' for n in lacking)}" for folder, lacking in missing.items())
    raise BenchError(
        f"MNIST not found in {', '.join(str(r / 'mnist') for r in roots)}{partial}; "
        "run `bench data fetch mnist` (or `bench data fetch mnist --from DIR` to copy local files), "
        "or point --data-dir or BENCH_DATA at a folder holding mnist/"
    )


def read_mnist(roots: list[Path]) -> tuple[Split, Split]:
    """MNIST's train and test splits, each file checked against its published MD5 first."""
    folder = mnist_folder(roots)
    for name in IDX_FILES.values():
        path = folder / f"{name}.gz" if (folder / f"{name}.gz").is_file() else folder / name
        problem = check_file(path)
        if problem:
            raise BenchError(f"{path}: {problem}; fetch it again with `bench data fetch mnist`")
    return read_idx_folder(folder)


def load_mnist(roots: list[Path]) -> Dataset:
    train, test = read_mnist(roots)
    return Dataset("mnist", 10, train, test, {}, source="MNIST (MD5-verified)")


def load_mnist_c(roots: list[Path]) -> Dataset:
    train, test = read_mnist(roots)
    ood, source = lazy_corrupted_splits("mnist", test, roots)
    return Dataset("mnist-c", 10, train, test, ood, source=f"MNIST (MD5-verified); {source}")


def _download(url: str, target: Path, progress: bool) -> None:
    """Download ``url`` to ``target``: pooch writes a temporary file, kept only if its MD5 is the published one."""
    pooch.retrieve(url, known_hash=f"md5:{MD5[target.name]}", fname=target.name, path=target.parent,
                   downloader=pooch.HTTPDownloader(progressbar=progress, timeout=60))


def fetch(root: Path, source: Path | None = None, mirrors: list[str] | None = None, retries: int = 3,
          progress: bool = True) -> Path:
    """Put the four verified MNIST files in ``root/mnist``: copied from ``source``, or downloaded.

    Each file is tried on each mirror in turn, a failed connection retried with a growing
    pause; a download whose MD5 is wrong is refused and the next mirror tried. Files already
    present and correct are kept.
    """
    folder = root / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    for name in DOWNLOADS:
        target = folder / name
        if not check_file(target):
            continue
        if source is not None:
            copied = Path(source) / name
            problem = check_file(copied)
            if problem:
                raise BenchError(f"{copied}: {problem}")
            write_atomically(target, lambda tmp, copied=copied: shutil.copyfile(copied, tmp))
            continue
        failures = []
        for mirror in mirrors or MIRRORS:
            for attempt in range(1, retries + 1):
                try:
                    _download(mirror + name, target, progress)
                    break
                except requests.HTTPError as error:
                    failures.append(f"{mirror}: HTTP {error.response.status_code} {error.response.reason}")
                    if error.response.status_code < 500:  # not found or forbidden: retrying will not help
                        break
                except OSError as error:  # no connection or a timeout (requests' errors are OSErrors)
                    failures.append(f"{mirror} (try {attempt}): {error}")
                    if attempt < retries:
                        time.sleep(attempt)
                except ValueError:  # pooch refused (and deleted) a wrong download: this mirror will not do better
                    failures.append(f"{mirror}: MD5 of the download differs from the published {MD5[name]}")
                    break
            if not check_file(target):
                break
        else:
            raise BenchError(f"could not download {name}:\n  " + "\n  ".join(failures) +
                             "\ncopy the files from elsewhere with `bench data fetch mnist --from DIR`")
    return folder


@dataclass
class FileCheck:
    path: Path
    problem: str  # "" when the file is fine


def verify(roots: list[Path]) -> list[FileCheck]:
    """Check every data file bench knows of in the data roots: MNIST by MD5, MNIST-C by shape and labels."""
    checks = []
    for root in roots:
        folder = root / "mnist"
        if not folder.is_dir():
            continue
        for name in IDX_FILES.values():
            present = [p for p in (folder / f"{name}.gz", folder / name) if p.is_file()]
            checks += [FileCheck(p, check_file(p)) for p in present] or [FileCheck(folder / f"{name}.gz", "missing")]
    try:
        _, test = read_mnist(roots)
    except BenchError:
        return checks
    for folder in candidate_folders("mnist", roots, test):
        if folder.is_dir():
            try:
                read_corrupted(folder, test)
                checks.append(FileCheck(folder, ""))
            except BenchError as error:
                checks.append(FileCheck(folder, str(error)))
    return checks
