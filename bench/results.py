"""Score tables: the per-example scores of one unit (dataset x model x seed), on disk as .npz.

File format (read it with ``numpy.load``; nothing in it needs pickle):

* ``<split>/id``, ``<split>/label``, ``<split>/pred``, ``<split>/noisy``: position in the
  split, label (training labels after label noise), the final model's prediction, and
  whether label noise replaced the label;
* ``<split>/<scorer spec>``: float64 scores, higher = harder / more anomalous;
* ``meta``: a JSON string with the unit's dataset, model, seed, label mode, config hash,
  scorer specs, failures (spec -> error), OoD split names, accuracies, timings and provenance.

Splits are ``train``, ``test`` (clean, in-distribution) and one per corruption.

Model checkpoints (one .npz per trained model) hold ``<checkpoint index>/<parameter>``
float arrays of the model's state at every checkpoint and a ``meta`` JSON string with the
checkpoints' epochs and the training's config and final loss: enough to probe the model
again for new scorers without training it again.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write through ``write(temporary_path)`` then rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(temporary))
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from the user's group
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


@dataclass
class ScoreTable:
    meta: dict[str, Any]
    splits: dict[str, dict[str, np.ndarray]]  # split -> column -> values

    @property
    def scorers(self) -> list[str]:
        """Specs of the scorers that produced scores (failed ones are in ``meta['failures']``)."""
        return [s for s in self.meta["scorers"] if s not in self.meta["failures"]]

    def columns(self) -> dict[str, dict[str, np.ndarray]]:
        """The scores by scorer: spec -> split -> values, for the scorers that produced scores and were read."""
        return {spec: {split: values[spec] for split, values in self.splits.items()}
                for spec in self.scorers if self.splits and all(spec in values for values in self.splits.values())}

    def frame(self, split: str) -> pd.DataFrame:
        return pd.DataFrame(self.splits[split])

    def save(self, path: Path) -> None:
        arrays = {f"{split}/{column}": values for split, table in self.splits.items() for column, values in table.items()}
        save_archive(path, arrays, self.meta)

    @classmethod
    def load(cls, path: Path, columns: Callable[[dict[str, Any]], set[str]] | None = None) -> "ScoreTable":
        """The table at ``path``; with ``columns``, only the columns ``columns(meta)`` names are read."""
        splits: dict[str, dict[str, np.ndarray]] = {}
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
            wanted = None if columns is None else columns(meta)
            for key in archive.files:
                if key != "meta":
                    split, column = key.split("/", 1)
                    if wanted is None or column in wanted:
                        splits.setdefault(split, {})[column] = archive[key]
        return cls(meta, splits)


def save_archive(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write named arrays and a JSON ``meta`` string as one .npz, atomically."""
    arrays = {**arrays, "meta": np.array(json.dumps(meta, sort_keys=True))}

    def write(temporary: Path) -> None:
        with open(temporary, "wb") as handle:
            np.savez(handle, **arrays)

    write_atomically(path, write)


def save_checkpoints(path: Path, states: list[dict[str, np.ndarray]], meta: dict[str, Any]) -> None:
    """Write the model's state at each checkpoint, in order, with ``meta``."""
    save_archive(path, {f"{index}/{name}": array for index, state in enumerate(states) for name, array in state.items()}, meta)


def load_checkpoints(path: Path) -> tuple[list[dict[str, np.ndarray]], dict[str, Any]]:
    """The states and meta written by ``save_checkpoints``."""
    states: dict[int, dict[str, np.ndarray]] = {}
    with np.load(path, allow_pickle=False) as archive:
        meta = json.loads(str(archive["meta"]))
        for key in archive.files:
            if key != "meta":
                index, name = key.split("/", 1)
                states.setdefault(int(index), {})[name] = archive[key]
    return [states[index] for index in sorted(states)], meta
