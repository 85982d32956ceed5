"""Datasets as the harness sees them: a training split, a clean test split and OoD splits.

A dataset is fixed for a given name: the corrupted copies do not change with the run's
seed, only training does, as with the static MNIST-C files.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from bench.errors import BenchError


@dataclass(frozen=True)
class Split:
    """Examples of one split. ``inputs`` of dtype uint8 are pixel intensities in [0, 255]."""

    inputs: np.ndarray  # (n, *input_shape)
    labels: np.ndarray  # (n,) int64
    noisy: np.ndarray | None = None  # (n,) bool, True where the label was replaced by label noise

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

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one model input; grayscale images get a channel axis."""
        shape = self.train.inputs.shape[1:]
        return (1, *shape) if len(shape) == 2 else shape

    def splits(self) -> dict[str, Split]:
        """Every scored split by name: train, test, then the OoD splits."""
        return {"train": self.train, "test": self.test, **self.ood}


_loaders: dict[str, Callable[[], Dataset]] = {}


def dataset_loader(name: str) -> Callable[[Callable[[], Dataset]], Callable[[], Dataset]]:
    def decorate(loader: Callable[[], Dataset]) -> Callable[[], Dataset]:
        _loaders[name] = loader
        return loader

    return decorate


def available_datasets() -> list[str]:
    _import_builtin_loaders()
    return sorted(_loaders)


def load_dataset(name: str) -> Dataset:
    _import_builtin_loaders()
    if name not in _loaders:
        close = difflib.get_close_matches(name, _loaders, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise BenchError(f"unknown dataset {name!r}; {hint}known: {', '.join(sorted(_loaders))}")
    return _loaders[name]()


def _import_builtin_loaders() -> None:
    from bench.data import digits  # noqa: F401  (registers digits-c)
