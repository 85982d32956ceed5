"""Reading CIFAR-10 in its binary form against the floor: the same bytes through ``numpy.frombuffer``.

A full-size CIFAR-10 (6 files of 10,000 records, random content) is written to a temporary
folder and packed as a gzipped tar, as the official archive is. The loader (``read_cifar``)
checks sizes, labels and, for the archive, the MD5 and every member; the floor reads the same
bytes and reshapes them with ``numpy.frombuffer`` (for the archive: decompresses the members
with ``tarfile``, without the MD5).
"""

from __future__ import annotations

import dataclasses
import hashlib
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from bench.data.cifar import CIFAR10, PIXELS, read_cifar
from benchmarks.common import best_time, report


def write(folder: Path) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for name, records in {**CIFAR10.train, **CIFAR10.test}.items():
        data = rng.integers(0, 256, (records, CIFAR10.record), dtype=np.uint8)
        data[:, 0] %= CIFAR10.n_classes
        (folder / name).write_bytes(data.tobytes())


def floor(files: list[bytes]) -> None:
    for raw in files:
        records = np.frombuffer(raw, np.uint8).reshape(-1, CIFAR10.record)
        records[:, 0].astype(np.int64), records[:, 1:].reshape(-1, 3, 32, 32).copy()


def run() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / CIFAR10.folder
        write(folder)
        archive = Path(tmp) / CIFAR10.archive
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(folder, arcname=folder.name)
        layout = dataclasses.replace(CIFAR10, md5=hashlib.md5(archive.read_bytes()).hexdigest())
        names = [*CIFAR10.train, *CIFAR10.test]
        from_folder = best_time(lambda: read_cifar(folder, layout))
        folder_floor = best_time(lambda: floor([(folder / name).read_bytes() for name in names]))

        def members() -> list[bytes]:
            with tarfile.open(archive, "r:gz") as tar:
                return [tar.extractfile(f"{CIFAR10.folder}/{name}").read() for name in names]

        from_archive = best_time(lambda: read_cifar(archive, layout))
        archive_floor = best_time(lambda: floor(members()))
    size = sum(records for records in {**CIFAR10.train, **CIFAR10.test}.values()) * (PIXELS + 1) / 2**20
    report("CIFAR-10 loading", max(from_folder / folder_floor, from_archive / archive_floor), "at most 2", {
        "data": f"60,000 records, {size:.0f} MB",
        "unpacked folder": f"{from_folder:.3f} s against {folder_floor:.3f} s for read_bytes + frombuffer "
                           f"({from_folder / folder_floor:.2f}x)",
        "gzipped archive": f"{from_archive:.3f} s (MD5 and member checks included) against {archive_floor:.3f} s for "
                           f"tarfile + frombuffer ({from_archive / archive_floor:.2f}x)",
    })
