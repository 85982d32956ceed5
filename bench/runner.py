"""The runner: a plan of units (dataset x model x seed), each trained, probed and saved, then the tasks.

A unit is a pure function of its config and seed, so a finished unit is never recomputed:
its score table is found by name (which includes the config hash) and reused.
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from bench import registry
from bench.api import PIXELS, Detector
from bench.config import RunConfig
from bench.data import Dataset, load_dataset
from bench.errors import BenchError
from bench.leaderboard import attach_provenance, git_sha, provenance, write_csv
from bench.models import build_model, resolve_device
from bench.probe import Probe, ProbeSplit
from bench.results import ScoreTable, write_atomically
from bench.tasks import evaluate
from bench.training import TrainSettings, train


@dataclass
class RunResult:
    config: RunConfig
    tables: list[ScoreTable]
    leaderboard: pd.DataFrame
    leaderboard_path: Path
    unit_paths: list[Path]


def scorer_specs(config: RunConfig) -> list[str]:
    """The canonical specs of the configured scorers; builds each once, so bad names fail before any training."""
    for plugin in config.plugins:
        registry.load_plugin_file(plugin)
    names = []
    for spec in config.scorers:
        if spec == "all":
            names += list(registry.available())
        else:
            names.append(spec)
    return list(dict.fromkeys(registry.create(spec).spec for spec in names))


def unit_path(config: RunConfig, dataset: str, seed: int, config_hash: str) -> Path:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{dataset}_{config.model}_seed{seed}_{config_hash}")
    return config.out_dir / "units" / f"{stem}.npz"


def check_writable(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        marker = directory / ".write-test"
        marker.write_text("")
        marker.unlink()
    except OSError as error:
        raise BenchError(f"results folder {directory} is not writable ({error.strerror}); pass --out with a folder you can write") from None


def model_free_columns(table: ScoreTable) -> dict[str, dict[str, np.ndarray]]:
    """The columns of a score table that do not depend on the trained model: detectors on pixels."""
    columns = {}
    for spec in table.scorers:
        scorer = registry.create(spec)
        if isinstance(scorer, Detector) and scorer.features == PIXELS:
            columns[spec] = {split: values[spec] for split, values in table.splits.items()}
    return columns


def run_unit(config: RunConfig, specs: list[str], dataset: Dataset, seed: int, device: torch.device,
             config_hash: str, progress: bool = True, known: dict | None = None, code: str = "unknown") -> ScoreTable:
    """Train one model, probing it at every checkpoint, and return its score table.

    ``known`` passes on the model-free columns of another unit of the same run, which are the same;
    ``code`` is the git SHA of the harness when the run began (files edited during a run do not count).
    """
    torch.manual_seed(seed)
    model = build_model(config.model, dataset.input_shape, dataset.n_classes).to(device)
    scorers = [registry.create(spec) for spec in specs]
    splits = {
        name: ProbeSplit(
            inputs=torch.as_tensor(split.inputs, device=device),
            labels=torch.as_tensor(split.labels, device=device),
            trusted_labels=name == "train" or config.label_mode == "true",
            noisy=split.noisy,
        )
        for name, split in dataset.splits().items()
    }
    probe = Probe(splits, scorers, dataset.input_shape, known=known)
    settings = TrainSettings(config.epochs, config.batch_size, config.lr, config.momentum,
                             config.weight_decay, config.checkpoint_every)
    bar = tqdm(total=config.epochs, desc=f"{dataset.name} {config.model} seed {seed}", unit="epoch",
               disable=not progress, file=sys.stderr, leave=True)
    train_loss = float("nan")

    def on_epoch(epoch: int, loss: float, accuracy: float) -> None:
        nonlocal train_loss
        train_loss = loss
        bar.set_postfix(loss=f"{loss:.3f}", acc=f"{accuracy:.3f}")
        bar.update()

    seconds = {"train": 0.0, "probe": 0.0}  # then "finish": detectors and final scores
    checkpoints = train(model, splits["train"].inputs, splits["train"].labels, settings,
                        torch.Generator().manual_seed(seed), dataset.input_shape, on_epoch)
    started = time.perf_counter()
    for checkpoint in checkpoints:  # the time spent inside the generator is training
        trained = time.perf_counter()
        seconds["train"] += trained - started
        probe.observe(model, checkpoint)
        started = time.perf_counter()
        seconds["probe"] += started - trained
    columns = probe.finish()
    seconds["finish"] = time.perf_counter() - started
    bar.close()
    for spec, error in probe.failures.items():
        print(f"warning: scorer {spec} failed on seed {seed} and is reported as NaN: {error}", file=sys.stderr)
    accuracy = {name: float(np.mean(table["pred"] == table["label"])) for name, table in columns.items()}
    meta = {
        "dataset": dataset.name,
        "model": config.model,
        "seed": seed,
        "label_mode": config.label_mode,
        "config_hash": config_hash,
        "config": config.unit_config(specs, dataset.source),
        "scorers": specs,
        "failures": probe.failures,
        "ood_splits": list(dataset.ood),
        "accuracy": accuracy,
        "final_train_loss": train_loss,
        "seconds": seconds,
        "provenance": provenance(device, config_hash, code),
    }
    return ScoreTable(meta, columns)


def run(config: RunConfig, progress: bool = True) -> RunResult:
    """Run every unit of the plan (reusing finished ones), then the tasks; writes the leaderboard CSV."""
    code = git_sha()  # before anything runs: the code this process imported
    specs = scorer_specs(config)
    device = resolve_device(config.device)
    check_writable(config.out_dir)
    dataset = load_dataset(config.dataset, config.data_dir, config.label_noise)
    config_hash = config.config_hash(specs, dataset.source)
    tables, paths, known = [], [], {}
    for seed in config.seeds:
        path = unit_path(config, dataset.name, seed, config_hash)
        if path.exists():
            table = ScoreTable.load(path)
            if progress:
                print(f"{dataset.name} {config.model} seed {seed}: reusing {path}", file=sys.stderr)
        else:
            table = run_unit(config, specs, dataset, seed, device, config_hash, progress, known, code)
            table.save(path)
        known = known or model_free_columns(table)
        tables.append(table)
        paths.append(path)
    board = attach_provenance(evaluate(tables), tables)
    leaderboard_path = config.out_dir / "leaderboard.csv"
    write_csv(board, leaderboard_path)
    write_atomically(config.out_dir / "config.toml", lambda temporary: temporary.write_text(config.to_toml()))
    return RunResult(config, tables, board, leaderboard_path, paths)
