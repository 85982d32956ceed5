"""The corrupted variant of a dataset's test split, in the official MNIST-C layout.

``<root>/<name>-c/<corruption>/{test_images,test_labels}.npy`` (uint8, n x 28 x 28): the
official MNIST-C archive unpacks to the same layout under ``mnist_c/``, and those files are
read when present. Otherwise the variant is generated from the clean test split with the
project's corruptions into ``<root>/<name>-c-<md5 of the clean test images, 8 digits>``
(the first data root; keyed by content, so two datasets of one name never share a copy),
with ``generated.json`` beside it saying how. It is built in a temporary folder and renamed
when complete: an interrupted build leaves nothing half-made, and the temporary folder of a
killed one is removed by the next (``bench.files``). Generated files follow the published
recipe but are not byte-identical to the official release.

Colour test splits get the CIFAR-10-C corruptions in that layout instead (``read_severities``),
generated into the same kind of folder, named after the MD5 of the clean test images and the
frost used (photographs or synthetic textures, ``colour_folder``; ``generated.json`` and the
source line name it too), a file per corruption, each written whole or not at all:
a run that asks for some corruptions generates those alone, and a later one that asks for more
generates only the missing ones. ``lazy_corrupted_splits`` reads or generates nothing until a
split is used, so a dataset loaded only for its test split costs no corruption.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

import bench
from bench.data.dataset import LazySplits, Split
from bench.data.colour import CHUNK, COLOUR_CORRUPTIONS, SEVERITIES, corrupt_colour, frost_photographs
from bench.data.corruptions import CORRUPTIONS, corrupt
from bench.errors import BenchError
from bench.files import full_disk_refused, remove_stale_temporaries, temporary_prefix, umask, write_atomically

GENERATION_SEED = 0
MARKER = "generated.json"
IMAGE_SHAPE = (28, 28)  # what the corruptions are defined for
DATA_ELSEWHERE = "free space on that disk, or pass --data-dir (or set BENCH_DATA) with a folder on another disk"


def fingerprint(images: np.ndarray) -> str:
    return hashlib.md5(np.ascontiguousarray(images).tobytes()).hexdigest()


def _recipe(test: Split) -> dict:
    return {"generator": f"difficulty-bench {bench.__version__}", "seed": GENERATION_SEED,
            "clean_test_md5": fingerprint(test.inputs), "corruptions": list(CORRUPTIONS)}


def generated_folder(name: str, test: Split, root: Path) -> Path:
    """Where the variant generated from this test split lives: named after the content it came from."""
    return root / f"{name}-c-{fingerprint(test.inputs)[:8]}"


def candidate_folders(name: str, roots: list[Path], test: Split | None = None) -> list[Path]:
    """Official layouts first, then (given the test split) the generated variant of its content."""
    official = [root / f"{name}{suffix}" for root in roots for suffix in ("-c", "_c")]
    return official + ([generated_folder(name, test, root) for root in roots] if test is not None else [])


def read_corrupted(folder: Path, test: Split, corruptions: Sequence[str] | None = None) -> dict[str, Split]:
    """The test split of each of ``corruptions`` (default: every one) from ``folder``, checked against the clean one."""
    splits = {}
    for corruption in CORRUPTIONS if corruptions is None else corruptions:
        files = {kind: folder / corruption / f"test_{kind}.npy" for kind in ("images", "labels")}
        try:
            images = np.load(files["images"], allow_pickle=False)
            labels = np.load(files["labels"], allow_pickle=False)
        except (OSError, ValueError) as error:
            raise BenchError(f"cannot read {files['images'].parent}: {error}; rebuild it with `bench data build`") from None
        if images.ndim == 4 and images.shape[-1] == 1:  # the official files carry a channel axis
            images = images[..., 0]
        if images.dtype != np.uint8 or images.shape != test.inputs.shape:
            raise BenchError(f"{files['images']} holds {images.dtype} {images.shape}; expected uint8 {test.inputs.shape}")
        if not np.array_equal(labels.reshape(-1), test.labels):
            raise BenchError(f"{files['labels']} does not match the labels of the clean test split; "
                             "the folder belongs to another dataset or is damaged")
        splits[corruption] = Split(images, test.labels, paired_with_test=True)
    return splits


def save_npy_chunks(path: Path, shape: tuple[int, ...], chunks) -> None:
    """Write a uint8 ``.npy`` of ``shape`` from its consecutive chunks, holding one chunk in memory at a time."""
    def write(temporary: Path) -> None:
        with open(temporary, "wb") as handle:
            np.lib.format.write_array_header_1_0(handle, {"descr": "|u1", "fortran_order": False, "shape": shape})
            written = 0
            for chunk in chunks:
                handle.write(np.ascontiguousarray(chunk, dtype=np.uint8).tobytes())
                written += len(chunk)
            if written != shape[0]:
                raise ValueError(f"{path}: {written} rows written, {shape[0]} announced")

    write_atomically(path, write)


def _state(folder: Path, test: Split) -> str:
    """``official``, ``generated`` (complete and current), or ``missing`` / ``stale`` / ``incomplete``."""
    if not all((folder / c / "test_images.npy").is_file() for c in CORRUPTIONS):
        return "missing"
    if not (folder / MARKER).is_file():
        return "official"
    recorded = json.loads((folder / MARKER).read_text())
    if not recorded.get("complete"):
        return "incomplete"
    return "generated" if {k: recorded.get(k) for k in _recipe(test)} == _recipe(test) else "stale"


def build_corrupted(folder: Path, test: Split, progress: bool = True) -> None:
    """Generate every corruption of the test split into a temporary folder beside ``folder``, then rename it."""
    building = _temporary_beside(folder)
    try:
        with full_disk_refused(folder, DATA_ELSEWHERE):
            for corruption in tqdm(CORRUPTIONS, desc=f"generating {folder.name}", unit="corruption",
                                   disable=not progress, file=sys.stderr):
                images = corrupt(test.inputs, corruption, GENERATION_SEED)
                (building / corruption).mkdir()
                for kind, array in (("images", images), ("labels", test.labels.astype(np.uint8))):
                    np.save(building / corruption / f"test_{kind}.npy", array)  # whole or not at all with the folder
            _finish_build(building, folder, {**_recipe(test), "complete": True})
    finally:
        shutil.rmtree(building, ignore_errors=True)


def _temporary_beside(folder: Path) -> Path:
    """A new temporary folder beside ``folder`` to build it in, once those that killed builds left are removed;
    a clear error where the data root cannot be written."""
    try:
        with full_disk_refused(folder, DATA_ELSEWHERE):
            folder.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(folder)
            return Path(tempfile.mkdtemp(dir=folder.parent, prefix=temporary_prefix(folder), suffix=".tmp"))
    except OSError as error:
        raise BenchError(f"cannot write the generated {folder.name} in {folder.parent} ({error.strerror}); "
                         "pass --data-dir (or set BENCH_DATA) with a folder you can write") from None


def _finish_build(building: Path, folder: Path, recipe: dict) -> None:
    """Write the manifest, then put the finished folder in place of ``folder``."""
    (building / MARKER).write_text(json.dumps(recipe, indent=1))
    os.chmod(building, 0o777 & ~umask())  # mkdtemp's 0700 would hide the data from the user's group
    if folder.exists():  # a stale or incomplete copy of the same content
        shutil.rmtree(folder)
    os.replace(building, folder)


def save_grid(dataset, path: Path, count: int = 6) -> None:
    """A PNG of the first ``count`` test images, clean and under every corruption."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = {"clean": dataset.test, **dataset.ood}
    figure, axes = plt.subplots(count, len(columns), figsize=(0.9 * len(columns), 0.9 * count + 0.4), squeeze=False,
                                facecolor="0.75")  # gray, so that white image borders (stripe) stay visible
    for j, (name, split) in enumerate(columns.items()):
        axes[0, j].set_title(name.replace("_", "\n"), fontsize=7)
        for i in range(count):
            axes[i, j].imshow(split.inputs[i], cmap="gray", vmin=0, vmax=255)
            axes[i, j].set_axis_off()
    figure.tight_layout(pad=0.2)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def read_severities(folder: Path, test: Split, what: str, corruptions: Sequence[str] | None = None) -> dict[str, Split]:
    """The ``<corruption>@<severity>`` splits of a folder in the CIFAR-10-C layout (``<corruption>.npy`` of
    5 severities x n images (n, h, w, 3) uint8, and ``labels.npy``), checked against the clean test split:
    those of ``corruptions``, or of every file there."""
    labels_file = folder / "labels.npy"
    n, shape = len(test), test.inputs.shape[2:]
    try:
        labels = np.load(labels_file, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise BenchError(f"cannot read {labels_file} ({error}); {folder} should hold {what} files") from None
    if labels.shape != (SEVERITIES * n,) or not (labels.reshape(SEVERITIES, n) == test.labels).all():
        raise BenchError(f"{labels_file} holds {labels.shape} labels that are not the test labels repeated for "
                         f"{SEVERITIES} severities; the folder belongs to another dataset or is damaged")
    splits = {}
    for file in _severity_files(folder) if corruptions is None else [folder / f"{c}.npy" for c in corruptions]:
        images = np.load(file, mmap_mode="r", allow_pickle=False)
        if images.shape != (SEVERITIES * n, *shape, 3) or images.dtype != np.uint8:
            raise BenchError(f"{file} holds {images.dtype} {images.shape}; a {what} file holds uint8 "
                             f"{(SEVERITIES * n, *shape, 3)}: {SEVERITIES} severities x {n} images")
        for severity in range(1, SEVERITIES + 1):
            block = images[(severity - 1) * n:severity * n]
            splits[f"{file.stem}@{severity}"] = Split(np.ascontiguousarray(block.transpose(0, 3, 1, 2)), test.labels,
                                                     paired_with_test=True)
    return splits


def _severity_files(folder: Path) -> list[Path]:
    return [file for file in sorted(folder.glob("*.npy")) if file.name != "labels.npy"]


def _severity_splits(corruptions: Sequence[str]) -> dict[str, list[str]]:
    """Each corruption's split names, one per severity: the groups of a LazySplits."""
    return {corruption: [f"{corruption}@{severity}" for severity in range(1, SEVERITIES + 1)] for corruption in corruptions}


def lazy_severities(folder: Path, test: Split, what: str) -> LazySplits:
    """The splits of ``read_severities(folder, test, what)``, each file read when one of its splits is first used."""
    return LazySplits(_severity_splits([file.stem for file in _severity_files(folder)]),
                      functools.partial(_severities_of, folder, test, what))


def _severities_of(folder: Path, test: Split, what: str, corruption: str) -> dict[str, Split]:
    return read_severities(folder, test, what, [corruption])


def _frost(test: Split) -> str:
    """Which frost the colour corruptions of this test split are made with: the photographs or the synthetic textures."""
    return frost_photographs(test.inputs.shape[2:])[1]


def _colour_recipe(test: Split) -> dict:
    return {**_recipe(test), "recipe": "CIFAR-10-C (Hendrycks & Dietterich 2019)", "corruptions": list(COLOUR_CORRUPTIONS),
            "severities": SEVERITIES, "chunk": CHUNK, "frost": _frost(test)}


def _colour_source(test: Split) -> str:
    return (f"corruptions: generated, CIFAR-10-C recipe ({_recipe(test)['generator']}, seed {GENERATION_SEED}, "
            f"{_frost(test)})")


def colour_folder(name: str, test: Split, root: Path) -> Path:
    """Where the CIFAR-10-C variant generated from this test split lives: named after the content it came from and
    the frost it is made with, so that variants with different frost never share a folder."""
    key = hashlib.md5(f"{fingerprint(test.inputs)} {_frost(test)}".encode()).hexdigest()
    return root / f"{name}-c-{key[:8]}"


def _is_current_colour_folder(folder: Path, test: Split) -> bool:
    """Whether ``folder`` is generated by this recipe: then each ``<corruption>.npy`` in it is complete (written whole)."""
    marker = folder / MARKER
    return marker.is_file() and json.loads(marker.read_text()) == _colour_recipe(test)


def _start_colour_folder(folder: Path, test: Split) -> None:
    """``folder`` with the labels and the recipe and no corruption yet, in place of a stale copy."""
    building = _temporary_beside(folder)
    try:
        with full_disk_refused(folder, DATA_ELSEWHERE):
            np.save(building / "labels.npy",
                    np.tile(test.labels, SEVERITIES).astype(np.uint8 if test.labels.max() < 256 else np.int64))
            _finish_build(building, folder, _colour_recipe(test))
    finally:
        shutil.rmtree(building, ignore_errors=True)


def _generate_colour(folder: Path, test: Split, corruption: str, progress: bool) -> None:
    """Write ``<corruption>.npy`` into ``folder``: the corruption at every severity, a chunk at a time."""
    n, shape = len(test), (*test.inputs.shape[2:], 3)
    chunks = (corrupt_colour(test.inputs[start:start + CHUNK], corruption, severity, GENERATION_SEED,
                             start // CHUNK).transpose(0, 2, 3, 1)
              for severity in range(1, SEVERITIES + 1) for start in range(0, n, CHUNK))
    save_npy_chunks(folder / f"{corruption}.npy", (SEVERITIES * n, *shape),
                    tqdm(chunks, total=SEVERITIES * math.ceil(n / CHUNK), desc=f"generating {folder.name}/{corruption}",
                         unit="chunk", disable=not progress, file=sys.stderr))


def build_colour_corrupted(folder: Path, test: Split, progress: bool = True) -> None:
    """Generate every colour corruption at every severity into ``folder``, a file per corruption."""
    _start_colour_folder(folder, test)
    for corruption in COLOUR_CORRUPTIONS:
        _generate_colour(folder, test, corruption, progress)


def colour_corrupted_splits(name: str, test: Split, roots: list[Path], progress: bool = True,
                            corruptions: Sequence[str] | None = None) -> tuple[dict[str, Split], str]:
    """The CIFAR-10-C corruptions ``corruptions`` (default: every one) of a colour test split: each read from a
    current generated folder that has its file, otherwise generated into the first data root's."""
    source = _colour_source(test)
    folders = [colour_folder(name, test, root) for root in roots]
    splits = {}
    for corruption in COLOUR_CORRUPTIONS if corruptions is None else corruptions:
        folder = next((f for f in folders if (f / f"{corruption}.npy").is_file() and _is_current_colour_folder(f, test)), None)
        if folder is None:
            folder = folders[0]
            if not _is_current_colour_folder(folder, test):
                if progress:
                    print(f"{name}-c not found in {', '.join(map(str, roots))}; generating it into {folder}", file=sys.stderr)
                _start_colour_folder(folder, test)
            _generate_colour(folder, test, corruption, progress)
        splits.update(read_severities(folder, test, "generated corruption", [corruption]))
    return splits, source


def _found(name: str, test: Split, roots: list[Path]) -> tuple[Path | None, str]:
    """The first official or current generated MNIST-C-style folder of a grayscale test split (None when there is
    none) and the line saying where its corruptions come from."""
    generated = f"corruptions: generated ({_recipe(test)['generator']}, seed {GENERATION_SEED})"
    for folder in candidate_folders(name, roots, test):
        state = _state(folder, test)
        if state == "official":
            return folder, "corruptions: official files"
        if state == "generated":
            return folder, generated
    return None, generated


def corrupted_splits(name: str, test: Split, roots: list[Path], progress: bool = True,
                     corruptions: Sequence[str] | None = None) -> tuple[dict[str, Split], str]:
    """The corrupted test splits of dataset ``name`` (those of ``corruptions``, default: every one) and a line
    saying where they come from.

    Colour images get the CIFAR-10-C corruptions (``colour_corrupted_splits``). For grayscale
    ones, official MNIST-C files win, then current generated ones; otherwise all of them are
    generated into the first data root, and the chosen ones read back.
    """
    if test.inputs.ndim == 4 and test.inputs.shape[1] == 3:
        return colour_corrupted_splits(name, test, roots, progress, corruptions)
    folder, source = _found(name, test, roots)
    if folder is None:
        if test.inputs.shape[1:] != IMAGE_SHAPE:  # before any work
            raise BenchError(
                f"the test images of {name} are {'x'.join(map(str, test.inputs.shape[1:]))}; the MNIST-C corruptions are "
                f"defined for 28x28 grayscale images, so its corrupted splits cannot be generated (other sizes and colour "
                f"are not supported yet): resize the images to 28x28, or put corrupted copies of your own in "
                f"{roots[0] / f'{name}-c'}/<corruption>/test_images.npy")
        folder = generated_folder(name, test, roots[0])
        if progress:
            print(f"{name}-c not found in {', '.join(map(str, roots))}; generating it into {folder}", file=sys.stderr)
        build_corrupted(folder, test, progress)
    return read_corrupted(folder, test, corruptions), source


def lazy_corrupted_splits(name: str, test: Split, roots: list[Path], progress: bool = True) -> tuple[LazySplits, str]:
    """``corrupted_splits`` with nothing read or generated until a split is used: the splits, each corruption's
    made when one of its splits is first used, and the line saying where they come from."""
    if test.inputs.ndim == 4 and test.inputs.shape[1] == 3:
        groups = _severity_splits(COLOUR_CORRUPTIONS)
        source = _colour_source(test)
    else:
        groups = {corruption: [corruption] for corruption in CORRUPTIONS}
        source = _found(name, test, roots)[1]
    return LazySplits(groups, functools.partial(_corruption_of, name, test, roots, progress)), source


def _corruption_of(name: str, test: Split, roots: list[Path], progress: bool, corruption: str) -> dict[str, Split]:
    return corrupted_splits(name, test, roots, progress, [corruption])[0]
