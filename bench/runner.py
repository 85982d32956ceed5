"""The runner: a plan of units (dataset x model x seed), each trained, probed and saved, then the tasks.

A unit is a pure function of its config and seed, so a finished unit is never recomputed:
its score table is found by name (which includes the config hash) and reused. Below a unit,
work is cached too: the model's state at every checkpoint is stored under the hash of the
training settings, and the scores of earlier units with the same training and label mode
are reused, so a changed scorer list trains nothing and computes only the new scorers.
"""

from __future__ import annotations

import re
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from bench import registry
from bench.api import PIXELS, Checkpoint, Detector
from bench.config import RunConfig
from bench.data import Dataset, load_dataset
from bench.errors import BenchError
from bench.leaderboard import attach_provenance, git_sha, provenance, write_csv
from bench.models import build_model, resolve_device
from bench.probe import Probe, ProbeSplit
from bench.results import ScoreTable, load_checkpoints, save_checkpoints, write_atomically
from bench.tasks import evaluate
from bench.training import TrainSettings, train


T = TypeVar("T")


@dataclass
class RunResult:
    config: RunConfig
    tables: list[ScoreTable]
    leaderboard: pd.DataFrame
    leaderboard_path: Path
    unit_paths: list[Path]


def scorer_specs(config: RunConfig) -> list[str]:
    """The canonical specs of the configured scorers, grids expanded; builds each once, so bad names fail before any training."""
    for plugin in config.plugins:
        registry.load_plugin_file(plugin)
    names = []
    for spec in config.scorers:
        if spec == "all":
            names += list(registry.available())
        else:
            names += registry.expand_grid(spec)
    return list(dict.fromkeys(registry.create(spec).spec for spec in names))


def full_specs(specs: list[str]) -> dict[str, str]:
    """Spec -> full spec (every parameter named): what identifies a score across runs and defaults."""
    return {spec: registry.create(spec).full_spec for spec in specs}


def _stem(config: RunConfig, dataset: str, seed: int, suffix: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{dataset}_{config.model}_seed{seed}_{suffix}")


def unit_path(config: RunConfig, dataset: str, seed: int, config_hash: str) -> Path:
    return config.out_dir / "units" / f"{_stem(config, dataset, seed, config_hash)}.npz"


def checkpoints_path(config: RunConfig, dataset: str, seed: int, training_hash: str) -> Path:
    return config.out_dir / "checkpoints" / f"{_stem(config, dataset, seed, training_hash)}.npz"


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
    return {spec: columns for spec, columns in table.columns().items()
            if isinstance(scorer := registry.create(spec), Detector) and scorer.features == PIXELS}


def reusable_columns(config: RunConfig, specs: list[str], dataset: Dataset, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Columns of ``specs`` (spec -> split -> scores) that units of other runs computed for this seed
    under the same training and label mode, found by full spec: a changed scorer list recomputes
    only what is new, and a changed default only the scorers whose parameters it changes."""
    wanted_specs = {full: spec for spec, full in full_specs(specs).items()}  # full spec -> spec in this run
    context = {key: value for key, value in config.unit_config({}, dataset.source).items() if key != "scorers"}
    found: dict[str, dict[str, np.ndarray]] = {}

    def recorded(meta: dict) -> dict[str, str]:
        """Spec -> full spec of a unit's scores, if they are of this training and label mode (units written
        before full specs were recorded name their scorers by spec alone, which a changed default makes
        ambiguous: they are not reused)."""
        same = {key: value for key, value in meta["config"].items() if key != "scorers"} == context
        scorers = meta["config"]["scorers"]
        return scorers if same and isinstance(scorers, dict) else {}

    def wanted(meta: dict) -> set[str]:
        return {spec for spec, full in recorded(meta).items()
                if full in wanted_specs and wanted_specs[full] not in found and spec not in meta["failures"]}

    for path in sorted((config.out_dir / "units").glob(f"{_stem(config, dataset.name, seed, '')}*.npz")):
        table = readable(lambda path: ScoreTable.load(path, wanted), path)
        for spec, columns in (table.columns() if table else {}).items():
            found.setdefault(wanted_specs[recorded(table.meta)[spec]], columns)
    return found


def readable(load: Callable[[Path], T], path: Path) -> T | None:
    """``load(path)``, or None when the file is missing or damaged (with a warning: it is computed again)."""
    if not path.exists():
        return None
    try:
        return load(path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        print(f"warning: {path} is damaged ({type(error).__name__}: {error}); computing it again", file=sys.stderr)
        return None


def _states(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return {name: tensor.detach().cpu().numpy().copy() for name, tensor in model.state_dict().items()}


def run_unit(config: RunConfig, specs: list[str], dataset: Dataset, seed: int, device: torch.device,
             config_hash: str, progress: bool = True, known: dict | None = None, code: str = "unknown") -> ScoreTable:
    """Train one model (or load its stored checkpoints), then probe it at every checkpoint; return its score table.

    ``known`` holds columns already computed elsewhere for this unit (model-free detectors of
    another seed, scores of an earlier run), which are not recomputed; ``code`` is the git SHA
    of the harness when the run began (files edited during a run do not count). The probe
    comes after the training, so that scorers may use the final model's predictions at every
    checkpoint (``Probe.use_final_model``).
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
    stored = checkpoints_path(config, dataset.name, seed, config.training_hash(dataset.source))
    description = f"{dataset.name} {config.model} seed {seed}"
    seconds = {"train": 0.0}  # then "probe", and "finish": detectors and final scores
    if (checkpoints := readable(load_checkpoints, stored)) is not None:
        states, training = checkpoints
    else:
        started = time.perf_counter()
        training, states = train_checkpoints(config, model, splits["train"], dataset, seed, description, progress)
        seconds["train"] = time.perf_counter() - started
        save_checkpoints(stored, states, training)
    started = time.perf_counter()
    if probe.needs_final_model:
        model.load_state_dict(as_state(states[-1]))
        probe.use_final_model(model)
    with tqdm(total=len(splits) * len(states), desc=f"{description}: probing", unit="pass",
              disable=not progress, file=sys.stderr) as bar:
        for name in splits:  # one split at a time: the running states of one split are in memory at once
            for checkpoint, state in zip(checkpoints_of(training), states):
                model.load_state_dict(as_state(state))
                probe.observe(model, checkpoint, [name])
                bar.update()
            probe.close(name)
    seconds["probe"] = time.perf_counter() - started
    started = time.perf_counter()
    columns = probe.finish()
    seconds["finish"] = time.perf_counter() - started
    for spec, error in probe.failures.items():
        print(f"warning: scorer {spec} failed on seed {seed} and is reported as NaN: {error}", file=sys.stderr)
    return ScoreTable(unit_meta(config, specs, dataset, seed, config_hash, columns, probe.failures, training,
                                seconds, sorted(known or {}), provenance(device, config_hash, code)), columns)


def as_state(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(array) for name, array in arrays.items()}


def train_settings(config: RunConfig) -> TrainSettings:
    return TrainSettings(config.epochs, config.batch_size, config.lr, config.momentum, config.weight_decay,
                         config.checkpoint_every)


def checkpoints_of(training: dict) -> list[Checkpoint]:
    epochs = training["checkpoint_epochs"]
    return [Checkpoint(index=index, epoch=epoch, total=len(epochs)) for index, epoch in enumerate(epochs)]


def train_checkpoints(config: RunConfig, model: torch.nn.Module, train_split: ProbeSplit, dataset: Dataset, seed: int,
                      description: str, progress: bool) -> tuple[dict, list[dict[str, np.ndarray]]]:
    """Train; returns the training record and the model's state at every checkpoint."""
    bar = tqdm(total=config.epochs, desc=description, unit="epoch", disable=not progress, file=sys.stderr, leave=True)
    train_loss = float("nan")

    def on_epoch(epoch: int, loss: float, accuracy: float) -> None:
        nonlocal train_loss
        train_loss = loss
        bar.set_postfix(loss=f"{loss:.3f}", acc=f"{accuracy:.3f}")
        bar.update()

    states, epochs = [], []
    for checkpoint in train(model, train_split.inputs, train_split.labels, train_settings(config),
                            torch.Generator().manual_seed(seed), dataset.input_shape, on_epoch):
        states.append(_states(model))
        epochs.append(checkpoint.epoch)
    bar.close()
    training = {"training": config.training_config(dataset.source), "seed": seed, "checkpoint_epochs": epochs,
                "final_train_loss": train_loss}
    return training, states


def unit_meta(config: RunConfig, specs: list[str], dataset: Dataset, seed: int, config_hash: str, columns: dict,
              failures: dict[str, str], training: dict, seconds: dict[str, float], reused: list[str],
              provenance: dict) -> dict:
    """The ``meta`` of a unit's score table (see ``bench.results``)."""
    return {
        "dataset": dataset.name,
        "model": config.model,
        "seed": seed,
        "label_mode": config.label_mode,
        "config_hash": config_hash,
        "config": config.unit_config(full_specs(specs), dataset.source),
        "scorers": specs,
        "failures": failures,
        "reused": reused,
        "ood_splits": list(dataset.ood),
        "accuracy": {name: float(np.mean(table["pred"] == table["label"])) for name, table in columns.items()},
        "final_train_loss": training["final_train_loss"],
        "seconds": seconds,
        "provenance": provenance,
    }


def compute_unit(config: RunConfig, specs: list[str], dataset: Dataset, seed: int, device: torch.device,
                 config_hash: str, progress: bool, model_free: dict, code: str) -> ScoreTable:
    """A unit that is not on disk: what earlier runs computed for it is reused, the rest is computed."""
    reused = {**model_free, **reusable_columns(config, specs, dataset, seed)}
    if progress and reused:
        computing = [spec for spec in specs if spec not in reused]
        print(f"{dataset.name} {config.model} seed {seed}: {len(reused)} of {len(specs)} scores already computed; "
              f"computing {', '.join(computing) or 'the predictions'}", file=sys.stderr)
    return run_unit(config, specs, dataset, seed, device, config_hash, progress, reused, code)


EXECUTORS = ("local", "ray")


def run(config: RunConfig, progress: bool = True, executor: str = "local", ray_address: str | None = None) -> RunResult:
    """Run every unit of the plan (reusing finished ones), then the tasks; writes the leaderboard CSV.

    ``executor="local"`` runs the units one after another in this process, the pixel-space
    detectors computed by the first and shared; ``"ray"`` runs each as a Ray task
    (``bench.executors``), on a local Ray instance or the cluster at ``ray_address``.
    """
    if executor not in EXECUTORS:
        raise BenchError(f"unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}")
    code = git_sha()  # before anything runs: the code this process imported
    specs = scorer_specs(config)
    device = resolve_device(config.device)
    check_writable(config.out_dir)
    dataset = load_dataset(config.dataset, config.data_dir, config.label_noise)
    config_hash = config.config_hash(full_specs(specs), dataset.source)
    paths = {seed: unit_path(config, dataset.name, seed, config_hash) for seed in config.seeds}
    tables = {seed: table for seed, path in paths.items() if (table := readable(ScoreTable.load, path)) is not None}
    if progress:
        for seed in tables:
            print(f"{dataset.name} {config.model} seed {seed}: reusing {paths[seed]}", file=sys.stderr)
    model_free = next((model_free_columns(table) for table in tables.values()), {})
    pending = [seed for seed in config.seeds if seed not in tables]

    def finished(seed: int, table: ScoreTable) -> None:  # saved at once: a killed run loses no finished unit
        table.save(paths[seed])
        tables[seed] = table

    if executor == "ray":
        from bench.executors import run_on_ray

        for seed, table in run_on_ray(config, specs, dataset, pending, config_hash, code, model_free, ray_address, progress):
            finished(seed, table)
    else:
        for seed in pending:
            finished(seed, compute_unit(config, specs, dataset, seed, device, config_hash, progress, model_free, code))
            model_free = model_free or model_free_columns(tables[seed])
    ordered = [tables[seed] for seed in config.seeds]
    board = attach_provenance(evaluate(ordered), ordered)
    leaderboard_path = config.out_dir / "leaderboard.csv"
    write_csv(board, leaderboard_path)
    write_atomically(config.out_dir / "config.toml", lambda temporary: temporary.write_text(config.to_toml()))
    return RunResult(config, ordered, board, leaderboard_path, [paths[seed] for seed in config.seeds])
