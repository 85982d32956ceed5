"""The datasets by name: ``NAME``, ``NAME:PATH`` (``idx:``, ``npz:``, ``folder:``, ``cifar10:`` ...), or
``module:callable`` and ``path/to/file.py:callable`` for a loader of the user's.

Every loader comes through the entry-point group ``bench.datasets`` (difficulty-bench declares
its own there, in ``pyproject.toml``), as a dataset plugin of another package does. An entry
point names a loader: a function of the data roots for the dataset ``NAME``, or of a path and
the roots for ``NAME:PATH``; CIFAR's serve both (a function of the roots with an ``at(path,
roots)``). A loader's ``caveat``, where it has one, says what results on it do not measure.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.data.colour import COLOUR_CORRUPTIONS
from bench.data.corruptions import CORRUPTIONS
from bench.data.dataset import Dataset, data_roots, lazy_view, refuse_test_set_alone
from bench.errors import BenchError
from bench.plugins import Registry

Loader = Callable[[list[Path]], Dataset]  # the data roots -> a dataset
PathLoader = Callable[[Path, list[Path]], Dataset]  # PATH of NAME:PATH, the data roots -> a dataset


def named(loader: Callable) -> Loader | None:
    """``loader`` where it loads the dataset ``NAME``: a function of the data roots alone."""
    return loader if len(inspect.signature(loader).parameters) == 1 else None


def at_path(loader: Callable) -> PathLoader | None:
    """What loads ``NAME:PATH`` for ``loader``: itself where it takes a path and the roots, else its ``at``."""
    return loader if len(inspect.signature(loader).parameters) == 2 else getattr(loader, "at", None)


def as_loader(name: str, loaded: object) -> dict[str, Callable]:
    """What an entry point declares, where it is a loader of either form."""
    if not callable(loaded) or not (named(loaded) or at_path(loaded)):
        raise TypeError(f"{loaded!r} is not a function of the data roots, nor of a path and the roots")
    return {name: loaded}


DATASETS: Registry[Callable] = Registry(
    "dataset", "bench.datasets", adopt=as_loader,
    known=lambda names: f"known: {', '.join(available_datasets())}, or module:callable for your own",
    wanted="a function of the data roots returning a bench.data.Dataset")


def available_datasets() -> list[str]:
    loaders = DATASETS.entries()
    return (sorted(name for name, loader in loaders.items() if named(loader))
            + [f"{name}:PATH" for name in sorted(loaders) if at_path(loaders[name])])


def dataset_caveat(name: str) -> str:
    """The caveat of a leaderboard's dataset (its name with or without ``[label_noise=...]``), or ``""``."""
    return getattr(DATASETS.entries().get(name.split("[")[0]), "caveat", "")


def load_dataset(name: str, data_dir: str | Path | None = None, corruptions: Sequence[str] = ("all",)) -> Dataset:
    """The named dataset, or ``NAME:PATH``, as published (``with_training_set`` makes a run's training split of it),
    with the corrupted splits of ``corruptions`` alone (``with_corruptions_only``; a dataset used only for its test
    split, as ``--ood`` does, takes none): only those are read or generated, and all of them before it returns. A
    test set alone is for that use only: asked for corruptions, it is refused before any is made."""
    roots = data_roots(data_dir)
    loaders = DATASETS.entries()
    prefix, sep, path = name.partition(":")
    if sep and prefix in loaders and at_path(loaders[prefix]):
        dataset = at_path(loaders[prefix])(Path(path).expanduser(), roots)
    elif name in loaders and named(loaders[name]):
        dataset = loaders[name](roots)
    elif sep:
        dataset = DATASETS.reference(name)(roots)
    else:
        raise DATASETS.unknown(name)
    if list(corruptions):
        refuse_test_set_alone(dataset)
    dataset = with_corruptions_only(dataset, corruptions)
    dataset.splits()  # every kept split read or generated now, so that a missing or damaged file fails here
    return dataset


def corruption_names() -> list[str]:
    """Every corruption bench generates: MNIST-C's (grayscale images), then CIFAR-10-C's not among them (colour)."""
    return list(dict.fromkeys([*CORRUPTIONS, *COLOUR_CORRUPTIONS]))


def with_corruptions_only(dataset: Dataset, corruptions: Sequence[str]) -> Dataset:
    """``dataset`` with the corrupted splits of ``corruptions`` alone (``["all"]``: every one; none for ``[]``) beside
    its other OoD splits; nothing is read or generated here. A corrupted split is a covariate one named after its
    corruption, ``fog``, or after a corruption and a severity, ``fog@3``."""
    if list(corruptions) == ["all"]:
        return dataset
    known = set(corruption_names())
    corruption_of = {split: split.partition("@")[0] for split in dataset.ood
                     if dataset.ood_kinds.get(split, "covariate") == "covariate" and ("@" in split or split in known)}
    missing = sorted(set(corruptions) - set(corruption_of.values()))
    if missing:
        raise BenchError(f"{dataset.name} has no corruption {', '.join(missing)} (its corruptions: "
                         f"{', '.join(dict.fromkeys(corruption_of.values())) or 'none'}); choose among them with "
                         "--corruptions (config key corruptions), or all")
    kept = [split for split in dataset.ood if split not in corruption_of or corruption_of[split] in corruptions]
    return dataclasses.replace(dataset, ood=lazy_view(dict.fromkeys(kept, dataset.ood)),
                               ood_kinds={split: dataset.ood_kinds[split] for split in kept if split in dataset.ood_kinds})


