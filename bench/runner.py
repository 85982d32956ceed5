"""A run: the plan, its units (reusing finished ones), then the tasks and the leaderboard.

A unit is a pure function of its plan and seed, so a finished unit is never recomputed: its
score table is found by name (which includes the config hash) and reused. Each unit is saved
as soon as it finishes, so a killed run started again redoes only the unfinished one.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from bench.config import RunConfig
from bench.data import Dataset, load_dataset, with_semantic_ood, with_training_set
from bench.errors import BenchError
from bench.executors import executor, model_free_columns
from bench.files import write_atomically
from bench.leaderboard import attach_provenance, write_csv
from bench.models import build_model, model_factory, resolve_device
from bench.plan import make_plan, scorer_specs
from bench.provenance import git_sha
from bench.store import Reused, ScoreTable, Store, readable
from bench.tasks import evaluate


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's CPU threads set to ``count`` for the run, and restored after it (a notebook keeps its own)."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and taskset narrow), not the machine's."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class RunResult:
    config: RunConfig
    tables: list[ScoreTable]  # one per seed, in the order of ``config.seeds``
    leaderboard: pd.DataFrame  # as written to ``leaderboard_path``
    leaderboard_path: Path
    unit_paths: list[Path]

    def scores(self, split: str = "test") -> pd.DataFrame:
        """Every seed's scores of ``split``: one row per example and seed (``seed``, ``id``, ``label``, ``pred``,
        ``noisy``), one column per scorer."""
        return pd.concat([table.frame(split).assign(seed=table.meta["seed"]) for table in self.tables],
                         ignore_index=True).pipe(lambda frame: frame[["seed", *frame.columns.drop("seed")]])


def run(config: RunConfig, progress: bool = True, executor_name: str = "local", ray_address: str | None = None,
        dataset: Dataset | None = None, ood: Sequence[Dataset] = ()) -> RunResult:
    """Run every unit of the plan (reusing finished ones), then the tasks; writes the leaderboard CSV.

    ``dataset`` replaces the one ``config.dataset`` names (the Python API's datasets built from arrays),
    and the test splits of ``ood`` are added as semantic OoD splits after those of ``config.ood``.

    ``executor_name`` is ``local`` (units one after another in this process) or ``ray`` (each a
    Ray task, on a local Ray instance or the cluster at ``ray_address``); see ``bench.executors``.
    """
    runner = executor(executor_name, ray_address)
    with torch_threads(config.threads or usable_cores()):  # the Ray executor asks each task for as many CPUs
        code = git_sha()  # before anything runs: the code this process imported
        specs = scorer_specs(config)  # bad names and settings fail before any data is read
        resolve_device(config.device)
        model_factory(config.model)  # an unknown or broken model fails before any data is read
        Store(config.out_dir).check_writable()
        base = load_dataset(config.dataset, config.data_dir) if dataset is None else dataset
        base = with_training_set(base, config.train_size, config.label_noise)
        dataset = with_semantic_ood(base, [*(load_dataset(name, config.data_dir) for name in config.ood), *ood])
        unlabeled = [name for name, split in dataset.splits().items() if (split.labels < 0).any()]
        if config.label_mode == "true" and unlabeled:
            raise BenchError(f"split {unlabeled[0]} of {dataset.name} has no labels, and --label-mode true scores "
                             "every split with its true label; use --label-mode predicted")
        build_model(config.model, dataset.input_shape, dataset.n_classes)  # a model that does not fit the data fails
        plan = make_plan(config, dataset, specs)
        paths = {seed: plan.unit_path(seed) for seed in config.seeds}
        tables = {seed: table for seed, path in paths.items() if (table := readable(ScoreTable.load, path)) is not None}
        for seed, table in list(tables.items()):
            if table.meta["failures"]:  # a failed score is never a finished one: computed again, the others reused
                del tables[seed]
                print(f"{dataset.name} {config.model} seed {seed}: computing again the scores that failed in "
                      f"{paths[seed]}: {', '.join(table.meta['failures'])}", file=sys.stderr)
            elif progress:
                print(f"{dataset.name} {config.model} seed {seed}: reusing {paths[seed]}", file=sys.stderr)
        model_free = next((model_free_columns(plan, table) for table in tables.values()), Reused())
        pending = [seed for seed in config.seeds if seed not in tables]
        for seed, table in runner.map(plan, dataset, pending, code, model_free, progress):
            table.save(paths[seed])  # at once: a killed run loses no finished unit
            tables[seed] = table
        ordered = [tables[seed] for seed in config.seeds]
        board = attach_provenance(evaluate(ordered, config.bootstrap_resamples), ordered)
        leaderboard_path = config.out_dir / "leaderboard.csv"
        write_csv(board, leaderboard_path)
        write_atomically(config.out_dir / "config.toml", lambda temporary: temporary.write_text(config.to_toml()))
        return RunResult(config, ordered, board, leaderboard_path, [paths[seed] for seed in config.seeds])
