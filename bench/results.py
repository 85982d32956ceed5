"""Score tables: the per-example scores of one unit (dataset x model x seed), on disk as .npz.

File format (read it with ``numpy.load``; nothing in it needs pickle):

* ``<split>/id``, ``<split>/label``, ``<split>/pred``, ``<split>/noisy``: position in the
  split, label (training labels after label noise), the final model's prediction, and
  whether label noise replaced the label;
* ``<split>/<scorer spec>``: float64 scores, higher = harder / more anomalous;
* ``meta``: a JSON string with the unit's dataset, model, seed, label mode, config hash,
  scorer specs, failures (spec -> error), OoD split names, accuracies, timings and provenance.

Splits are ``train``, ``test`` (clean, in-distribution) and one per corruption.
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

    def frame(self, split: str) -> pd.DataFrame:
        return pd.DataFrame(self.splits[split])

    def save(self, path: Path) -> None:
        arrays = {f"{split}/{column}": values for split, table in self.splits.items() for column, values in table.items()}
        arrays["meta"] = np.array(json.dumps(self.meta, sort_keys=True))

        def write(temporary: Path) -> None:
            with open(temporary, "wb") as handle:
                np.savez(handle, **arrays)

        write_atomically(path, write)

    @classmethod
    def load(cls, path: Path) -> "ScoreTable":
        splits: dict[str, dict[str, np.ndarray]] = {}
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
            for key in archive.files:
                if key != "meta":
                    split, column = key.split("/", 1)
                    splits.setdefault(split, {})[column] = archive[key]
        return cls(meta, splits)
