"""Datasets as the harness sees them: a training split, a clean test split and OoD splits.

A dataset is fixed for a given name: the corrupted copies and the label noise do not change
with the run's seed, only training does, as with the static MNIST-C files.

Files are looked up in the data roots, in order: ``--data-dir``, the ``BENCH_DATA``
environment variable, then ``datasets/`` at the project root. Files that bench creates
(downloads, generated corruptions) go to the first of them.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from bench.errors import BenchError

PROJECT_DATA = Path(__file__).resolve().parents[2] / "datasets"
LABEL_NOISE_SEED = 0


@dataclass(frozen=True)
class Split:
    """Examples of one split. ``inputs`` of dtype uint8 are pixel intensities in [0, 255]."""

    inputs: np.ndarray  # (n, *input_shape)
    labels: np.ndarray  # (n,) int64
    noisy: np.ndarray | None = None  # (n,) bool, True where label noise changed the label

    def __post_init__(self) -> None:
        if len(self.inputs) != len(self.labels):
            raise ValueError(f"split has {len(self.inputs)} inputs but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Dataset:
    name: str
    n_classes: int
    train: Split
    test: Split  # clean, in-distribution
    ood: dict[str, Split] = field(default_factory=dict)  # corruption name -> corrupted test split
    source: str = ""  # where the data comes from, precisely enough that different data never share a cache entry

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one model input; grayscale images get a channel axis."""
        shape = self.train.inputs.shape[1:]
        return (1, *shape) if len(shape) == 2 else shape

    def splits(self) -> dict[str, Split]:
        """Every scored split by name: train, test, then the OoD splits."""
        return {"train": self.train, "test": self.test, **self.ood}


def data_roots(data_dir: str | Path | None = None) -> list[Path]:
    """The folders searched for data, in order; the first one receives what bench writes."""
    roots = [Path(data_dir)] if data_dir else []
    if os.environ.get("BENCH_DATA"):
        roots.append(Path(os.environ["BENCH_DATA"]))
    roots.append(PROJECT_DATA if PROJECT_DATA.is_dir() else Path.cwd() / "datasets")
    return list(dict.fromkeys(roots))


def with_label_noise(dataset: Dataset, fraction: float, seed: int = LABEL_NOISE_SEED) -> Dataset:
    """Shuffle the labels of a random ``fraction`` of the training examples among themselves.

    This is the VoG paper's Sec. 4.1 protocol. An example whose shuffled label happens to
    equal its own is not counted as noisy: ``noisy`` marks the labels that are wrong.
    """
    if not 0.0 <= fraction < 1.0:
        raise BenchError(f"label noise {fraction} is outside [0, 1); give the fraction of training labels to shuffle, e.g. 0.2")
    if fraction == 0.0:
        return dataset
    rng = np.random.default_rng(seed)
    labels = dataset.train.labels.copy()
    chosen = rng.choice(len(labels), size=round(fraction * len(labels)), replace=False)
    labels[chosen] = labels[rng.permutation(chosen)]
    train = Split(dataset.train.inputs, labels, noisy=labels != dataset.train.labels)
    return dataclasses.replace(dataset, name=f"{dataset.name}[label_noise={fraction}]", train=train,
                               source=f"{dataset.source}; label noise {fraction} (seed {seed})")


Loader = Callable[[list[Path]], Dataset]
_loaders: dict[str, Loader] = {}


def dataset_loader(name: str) -> Callable[[Loader], Loader]:
    """Register a loader: a function of the data roots that returns the dataset."""

    def decorate(loader: Loader) -> Loader:
        _loaders[name] = loader
        return loader

    return decorate


def available_datasets() -> list[str]:
    _import_builtin_loaders()
    return sorted(_loaders) + ["idx:PATH"]


def load_dataset(name: str, data_dir: str | Path | None = None, label_noise: float = 0.0) -> Dataset:
    """The named dataset (or ``idx:PATH``, a folder of MNIST-format files), with optional label noise."""
    _import_builtin_loaders()
    roots = data_roots(data_dir)
    if name.startswith("idx:"):
        from bench.data.idx import load_idx_dataset

        dataset = load_idx_dataset(Path(name[len("idx:"):]), roots)
    elif name in _loaders:
        dataset = _loaders[name](roots)
    else:
        close = difflib.get_close_matches(name, _loaders, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise BenchError(f"unknown dataset {name!r}; {hint}known: {', '.join(available_datasets())}")
    return with_label_noise(dataset, label_noise)


def _import_builtin_loaders() -> None:
    from bench.data import digits, mnist  # noqa: F401  (each registers its datasets)
