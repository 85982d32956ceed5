"""A run: the plan, its units (reusing finished ones), then the tasks and the leaderboard.

A unit is a pure function of its plan and seed, so a finished unit is never recomputed: its
score table is found by name (which includes the config hash) and reused. Each unit is saved
as soon as it finishes, so a killed run started again redoes only the unfinished one.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.checkpoints import CheckpointSource, find_checkpoints
from bench.config import RunConfig, digest, load_toml
from bench.data import (Dataset, load_dataset, with_corrupted_size, with_corruptions_only, with_semantic_ood,
                        with_training_set, without_in_distribution_copies)
from bench.errors import BenchError
from bench.executors import cpu_threads, executor, model_free_columns
from bench.files import write_atomically
from bench.leaderboard import attach_provenance, read_csv, write_csv
from bench.models import build_model, model_factory, resolve_device
from bench.plan import make_plan, scorer_specs
from bench.provenance import git_sha
from bench.store import Reused, ScoreTable, Store, readable
from bench.tasks import evaluate
from bench.tasks.rows import OverExamples


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and taskset narrow), not the machine's."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_threads(requested: int) -> int:
    """The run's CPU threads: ``requested`` (``--threads``, the config's ``threads``) unless 0, else
    ``OMP_NUM_THREADS`` as PyTorch reads it, else the usable cores. When both are given and differ, the
    request wins, and stderr says so."""
    variable = os.environ.get("OMP_NUM_THREADS", "").strip()
    if not variable:
        return requested or usable_cores()
    first = variable.split(",")[0].strip()  # OpenMP's list gives the outermost level first
    from_variable = int(first) if first.isdigit() and int(first) > 0 else None
    if requested:
        if requested != from_variable:
            print(f"note: threads = {requested} (--threads or the config) wins over OMP_NUM_THREADS={variable}, "
                  "for torch and BLAS alike", file=sys.stderr)
        return requested
    if from_variable is None:
        raise BenchError(f"OMP_NUM_THREADS={variable!r} is not a number of threads; set it to one (e.g. "
                         "OMP_NUM_THREADS=2), unset it, or give --threads")
    return from_variable


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
    """Run every unit of the plan (reusing finished ones), then the tasks; writes the leaderboard CSV (keeping one
    of other settings found there: ``keep_leaderboard_of_other_settings``), then raises a BenchError if no scorer
    left a score and some failed (every failure is in the units and the leaderboard's notes, and is computed again
    next time; scorers skipped for what the checkpoints lack are explained there too, and are not an error).

    ``dataset`` replaces the one ``config.dataset`` names (the Python API's datasets built from arrays),
    and the test splits of ``ood`` are added as OoD splits after those of ``config.ood`` (their kinds:
    ``config.ood_kind``, ``with_semantic_ood``). Exact copies of in-distribution images are dropped from every OoD
    split before any unit runs (``without_in_distribution_copies``).

    ``executor_name`` is ``local`` (units one after another in this process) or ``ray`` (each a
    Ray task, on a local Ray instance or the cluster at ``ray_address``); see ``bench.executors``.
    """
    runner = executor(executor_name, ray_address)
    with cpu_threads(run_threads(config.threads)):  # the Ray executor asks each task for as many CPUs
        code = git_sha()  # before anything runs: the code this process imported
        specs = scorer_specs(config)  # bad names and settings fail before any data is read
        resolve_device(config.device)
        model_factory(config.model)  # an unknown or broken model fails before any data is read
        Store(config.out_dir).check_writable()
        sources = user_checkpoints(config)
        published = load_dataset(config.dataset, config.data_dir, config.corruptions) if dataset is None else with_corruptions_only(dataset, config.corruptions)
        published = with_corrupted_size(published, config.corrupted_size)
        base = with_training_set(published, config.train_size, config.label_noise)
        others = [*(load_dataset(name, config.data_dir, corruptions=()) for name in config.ood), *ood]
        dataset = with_semantic_ood(base, others, dict(entry.rsplit("=", 1) for entry in config.ood_kind),
                                    config.ood_resize)
        dataset = without_in_distribution_copies(dataset, published)
        for split, count in dataset.ood_dropped.items():
            print(f"note: OoD split {split}: {count} exact {'copy' if count == 1 else 'copies'} of in-distribution "
                  "images dropped before scoring", file=sys.stderr)
        unlabeled = [name for name, split in dataset.splits().items() if (split.labels < 0).any()]
        if config.label_mode == "true" and unlabeled:
            raise BenchError(f"split {unlabeled[0]} of {dataset.name} has no labels, and --label-mode true scores "
                             "every split with its true label; use --label-mode predicted")
        build_model(config.model, dataset.input_shape, dataset.n_classes)  # a model that does not fit the data fails
        plan = make_plan(config, dataset, specs, sources)
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
            plan.store.remove_shards(paths[seed])
            tables[seed] = table
        ordered = [tables[seed] for seed in config.seeds]
        how = OverExamples(config.example_intervals, config.bootstrap_resamples)
        board = attach_provenance(evaluate(ordered, how), ordered)
        leaderboard_path = config.out_dir / "leaderboard.csv"
        keep_leaderboard_of_other_settings(config, board)
        write_csv(board, leaderboard_path)
        write_atomically(config.out_dir / "config.toml", lambda temporary: temporary.write_text(config.to_toml()))
        failed = any(table.meta["failures"] for table in ordered)  # not only skipped, which the notes explain
        if failed and not any(table.scorers for table in ordered):  # as scikit-learn's cross_validate when every fit failed
            raise BenchError(every_scorer_failed(ordered[0], leaderboard_path))
        return RunResult(config, ordered, board, leaderboard_path, [paths[seed] for seed in config.seeds])


def user_checkpoints(config: RunConfig) -> tuple[CheckpointSource, ...]:
    """The sources ``config.checkpoints`` names, found and digested (none: the harness trains the models)."""
    if not config.checkpoints:
        return ()
    if len(config.seeds) != len(config.checkpoints):
        raise BenchError(f"{len(config.checkpoints)} checkpoint sources and {len(config.seeds)} seeds "
                         f"({', '.join(map(str, config.seeds))}): with checkpoints, each seed names one source's unit; "
                         f"give as many seeds, e.g. --seeds {len(config.checkpoints)} (bench score does)")
    if config.cross_fit:
        raise BenchError("cross_fit trains K more models with the harness's recipe, which checkpoints of your own "
                         "do not come with; set cross_fit = 0 (the out-of-sample label-quality scores then stay off)")
    return tuple(find_checkpoints(source) for source in config.checkpoints)


def every_scorer_failed(table: ScoreTable, leaderboard_path: Path, listed: int = 3) -> str:
    """The error of a run in which no scorer left a score: the first failures of ``table``, and where the rest are."""
    failures = list(table.meta["failures"].items())
    errors = "; ".join(f"{spec}: {error}" for spec, error in failures[:listed])
    more = f"; and {len(failures) - listed} more" if len(failures) > listed else ""
    return (f"every scorer failed on every seed ({errors}{more}); {leaderboard_path} holds their NaN rows with the "
            "errors in its note column. Fix the scorers, or leave them out of --scorers, and run again: the trained "
            "models are kept, so only the scores are computed")


LOCATION = ("name", "out")  # where a run's results go, not what they are
EXECUTION = ("shards",)  # how a probe runs, not what it computes (the same scores bit for bit)
EXTENSIBLE = ("scorers", "plugins")  # a run that adds to these extends the leaderboard of the same settings


def keep_leaderboard_of_other_settings(config: RunConfig, board: pd.DataFrame) -> None:
    """Before ``board`` replaces ``<out>/leaderboard.csv``: unless that leaderboard came from the same settings
    and has no scorer ``board`` lacks (a rerun, or a run that adds scorers: README, Caching), keep it and its
    ``config.toml`` under names that say which settings they hold, and say so on stderr."""
    out = config.out_dir
    old_board, old_config = out / "leaderboard.csv", out / "config.toml"
    if not old_board.is_file():
        return
    changed = changed_settings(old_config, old_board, config, board)
    if changed == {}:
        return
    stem = kept_name(changed)
    for suffix in itertools.chain([stem], (f"{stem}.{count}" for count in itertools.count(2))):
        kept_board, kept_config = out / f"leaderboard.{suffix}.csv", out / f"config.{suffix}.toml"
        if not kept_board.exists() and not kept_config.exists():
            break
    os.replace(old_board, kept_board)
    if old_config.is_file():
        os.replace(old_config, kept_config)
    what = ("whose config.toml could not be read" if changed is None else "of other settings: "
            + ", ".join(f"{key} {shown(old)} (now {shown(new)})" for key, (old, new) in changed.items()))
    print(f"note: {old_board} held the leaderboard {what}; kept it as {kept_board.name}"
          + (f", with its settings as {kept_config.name}" if kept_config.exists() else ""), file=sys.stderr)


def changed_settings(old_config: Path, old_board: Path, config: RunConfig,
                     board: pd.DataFrame) -> dict[str, tuple[object, object]] | None:
    """Setting -> (old value, new value) where ``config`` differs from ``old_config``; the scorers count as changed
    only when ``old_board`` has a scorer (by full spec) that ``board`` lacks. None: the old settings are unreadable."""
    try:
        before = load_toml(old_config, RunConfig()).flat()
        old_specs = set(read_csv(old_board).full_spec)
    except (BenchError, OSError, ValueError):  # no or an unknown version's config.toml; a board without full specs
        return None
    now = config.flat()
    changed = {key: (before[key], now[key]) for key in now
               if key not in (*LOCATION, *EXECUTION, *EXTENSIBLE) and before[key] != now[key]}
    if not old_specs <= set(board.full_spec):
        changed["scorers"] = (before["scorers"], now["scorers"])
    return changed


def shown(value: object, width: int = 40) -> str:
    """A setting's value in one short piece of text: a list joined by commas, cut at ``width`` characters."""
    text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def kept_name(changed: dict[str, tuple[object, object]] | None, width: int = 80) -> str:
    """The old values of the changed settings as a file name can hold them: ``dataset-digits-c_epochs-3``; cut at
    ``width`` characters, with a digest of the whole so two long names stay apart."""
    if changed is None:
        return "unknown-settings"
    text = "_".join(f"{key}-{shown(old, width)}" for key, (old, _) in changed.items())
    text = re.sub(r"[^A-Za-z0-9.=+_-]+", "-", text).strip("-")
    return text if len(text) <= width else f"{text[:width - 13]}-{digest({'settings': text})}"
