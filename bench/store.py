"""The results folder: where each file of a run lives, the score tables and checkpoints in it, and the cache.

```
<out>/units/<dataset>_<model>_seed<s>_<confighash>.npz          a unit's score table
<out>/checkpoints/<dataset>_<model>_seed<s>_<traininghash>.npz   the model at every checkpoint
```

A score table is a plain ``.npz`` (read it with ``numpy.load``; nothing in it needs pickle):

* ``<split>/id``, ``<split>/label``, ``<split>/pred``, ``<split>/noisy``: position in the
  split, label (training labels after label noise), the final model's prediction, and
  whether label noise replaced the label;
* ``<split>/boundary_distance``: the distance to the Bayes boundary, only for data that knows it (``two-blobs``);
* ``<split>/<scorer spec>``: float64 scores, higher = harder / more anomalous;
* ``meta``: a JSON string with the unit's dataset, model, seed, label mode, config hash,
  config (with every scorer's full spec), scorer specs, failures (spec -> error), skipped scorers (spec -> what
  the checkpoints lack for it), the epochs
  each scorer observed, OoD split names (and the in-distribution copies dropped from each),
  accuracies, timings and provenance.

A checkpoints file holds ``<checkpoint index>/<parameter>`` arrays of the model's state at
every checkpoint and a ``meta`` JSON string with the checkpoints' epochs and the training's
config and final loss: enough to probe the model again for new scorers without training it.

Every file is written atomically (``bench.files``); one found damaged is computed again.
"""

from __future__ import annotations

import json
import os
import re
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from bench.errors import BenchError
from bench.files import write_atomically

T = TypeVar("T")


@dataclass
class ScoreTable:
    meta: dict[str, Any]
    splits: dict[str, dict[str, np.ndarray]]  # split -> column -> values

    @property
    def scorers(self) -> list[str]:
        """Specs of the scorers that produced scores (failed ones are in ``meta['failures']``, skipped ones in
        ``meta['skipped']``)."""
        unscored = {**self.meta["failures"], **self.meta.get("skipped", {})}
        return [s for s in self.meta["scorers"] if s not in unscored]

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


@dataclass
class Reused:
    """Scores that other units computed, taken instead of computing them: spec -> split -> scores, and spec ->
    their cost where they were computed (``Probe.cost``; none from a unit written before costs were measured)."""

    columns: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    cost: dict[str, dict[str, float]] = field(default_factory=dict)

    def take(self, spec: str, table: ScoreTable, recorded: str) -> None:
        """Reuse as ``spec`` the scores ``table`` holds under ``recorded``, unless ``spec`` is already reused."""
        if spec not in self.columns:
            self.columns[spec] = {split: values[recorded] for split, values in table.splits.items()}
            if recorded in table.meta.get("cost", {}):
                self.cost[spec] = table.meta["cost"][recorded]

    def __or__(self, other: "Reused") -> "Reused":
        return Reused({**self.columns, **other.columns}, {**self.cost, **other.cost})


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


def readable(load: Callable[[Path], T], path: Path) -> T | None:
    """``load(path)``, or None when the file is missing or damaged (with a warning: it is computed again)."""
    if not path.exists():
        return None
    try:
        return load(path)
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as error:  # EOFError: an empty file
        print(f"warning: {path} is damaged ({type(error).__name__}: {error}); computing it again", file=sys.stderr)
        return None


class Store:
    """The files of one results folder, named after what they hold."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)

    @staticmethod
    def stem(dataset: str, model: str, seed: int, suffix: str) -> str:
        """``<dataset>_<model>_seed<s>_<suffix>``, each part in letters, digits, dots and dashes:
        ``fashion-mnist[label_noise=0.2]`` -> ``fashion-mnist-label-noise-0.2``."""
        parts = [dataset, model, f"seed{seed}", suffix]
        return "_".join(re.sub(r"[^A-Za-z0-9.]+", "-", part).strip("-") for part in parts)

    def unit_path(self, dataset: str, model: str, seed: int, config_hash: str) -> Path:
        return self.out_dir / "units" / f"{self.stem(dataset, model, seed, config_hash)}.npz"

    def checkpoints_path(self, dataset: str, model: str, seed: int, training_hash: str) -> Path:
        return self.out_dir / "checkpoints" / f"{self.stem(dataset, model, seed, training_hash)}.npz"

    def shard_path(self, unit_path: Path, shard: int, shards: int) -> Path:
        """Where shard ``shard`` (0-based) of ``shards`` of a unit's probe is kept until the unit is saved."""
        return self.out_dir / "shards" / f"{unit_path.stem}_shard-{shard + 1}-of-{shards}.npz"

    def remove_shards(self, unit_path: Path) -> None:
        """The shards of a unit, once the unit is saved: they are in it."""
        for path in (self.out_dir / "shards").glob(f"{unit_path.stem}_shard-*.npz"):
            path.unlink()

    def check_writable(self) -> None:
        """Refuse a results folder that cannot be written, without making it: a refused command leaves nothing."""
        existing = next(folder for folder in (self.out_dir, *self.out_dir.parents) if folder.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            why = "is a file" if not existing.is_dir() else "cannot be written"
            raise BenchError(f"results folder {self.out_dir} is not writable ({existing} {why}); "
                             "pass --out with a folder you can write")

    def reusable_columns(self, dataset: str, model: str, seed: int, context: dict[str, Any],
                         wanted: dict[str, str]) -> Reused:
        """Columns that other units of this seed computed under the same
        ``context`` (the unit config without its scorers), found by full spec: ``wanted`` maps the full
        specs sought to their specs in this run. A changed scorer list recomputes only what is new, and
        a changed default only the scorers whose parameters it changes."""
        found = Reused()

        def recorded(meta: dict) -> dict[str, str]:
            """Spec -> full spec of a unit's scores, if they are of this context."""
            same = {key: value for key, value in meta["config"].items() if key != "scorers"} == context
            return meta["config"]["scorers"] if same else {}

        def columns(meta: dict) -> set[str]:
            return {spec for spec, full in recorded(meta).items()
                    if full in wanted and wanted[full] not in found.columns and spec not in meta["failures"]}

        for path in sorted((self.out_dir / "units").glob(f"{self.stem(dataset, model, seed, '')}*.npz")):
            table = readable(lambda path: ScoreTable.load(path, columns), path)
            for spec in (table.columns() if table else {}):
                found.take(wanted[recorded(table.meta)[spec]], table, spec)
        return found

    def units_of(self, board: pd.DataFrame) -> list[ScoreTable]:
        """The score tables a leaderboard of this folder was computed from, in seed order."""
        units = board[board.seed != "all"][["dataset", "model", "seed", "config_hash"]].drop_duplicates()
        paths = [self.unit_path(u.dataset, u.model, int(u.seed), u.config_hash) for u in units.itertuples()]
        missing = [str(path) for path in paths if not path.is_file()]
        if missing:
            raise BenchError(f"the score tables behind the leaderboard of {self.out_dir} are missing: "
                             f"{', '.join(missing)}; rerun `bench run` with the same settings to recreate them")
        return sorted((ScoreTable.load(path) for path in paths), key=lambda table: table.meta["seed"])
