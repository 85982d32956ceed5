"""One unit (dataset x model x seed): train the model, storing its state at every checkpoint, then probe it.

A unit takes what is already computed: the stored checkpoints of the same training (no
training then), scores of earlier units with the same training and label mode (found by
full spec), and the model-free columns of another seed; it computes only the rest.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from bench import registry
from bench.api import Checkpoint
from bench.config import Recipe
from bench.data import Dataset
from bench.errors import BenchError
from bench.models import build_model
from bench.plan import Plan
from bench.probe import Probe, ProbeSplit
from bench.provenance import provenance
from bench.store import Reused, ScoreTable, load_checkpoints, readable, save_checkpoints
from bench.training import checkpoint_lrs, train


@contextlib.contextmanager
def out_of_memory_advice(doing: str, key: str, batch_size: int) -> Iterator[None]:
    """Out of GPU memory becomes an error that says which batch size to lower; the units already
    finished are on disk (the runner saves each as it finishes)."""
    try:
        yield
    except torch.OutOfMemoryError:
        smaller = max(1, batch_size // 2)
        raise BenchError(f"out of GPU memory {doing} with {key} = {batch_size}; lower it, e.g. {key} = {smaller} in the "
                         f"config file or --{key.replace('_', '-')} {smaller}; the finished units are kept") from None


def checkpoints_of(training: dict, recipe: Recipe, train_size: int) -> list[Checkpoint]:
    """The checkpoints of a training record, with their learning rates from ``recipe`` (the one the record's hash
    names: stored checkpoints of any version get them)."""
    epochs = training["checkpoint_epochs"]
    return [Checkpoint(index=index, epoch=epoch, total=len(epochs), lr=lr)
            for index, (epoch, lr) in enumerate(zip(epochs, checkpoint_lrs(recipe, train_size, epochs)))]


def train_checkpoints(plan: Plan, model: torch.nn.Module, train_split: ProbeSplit, dataset: Dataset, seed: int,
                      description: str, progress: bool) -> tuple[dict, list[dict[str, np.ndarray]]]:
    """Train; returns the training record and the model's state at every checkpoint."""
    bar = tqdm(total=plan.config.epochs, desc=description, unit="epoch", disable=not progress, file=sys.stderr)
    train_loss = float("nan")

    def on_epoch(epoch: int, loss: float, accuracy: float) -> None:
        nonlocal train_loss
        train_loss = loss
        bar.set_postfix(loss=f"{loss:.3f}", acc=f"{accuracy:.3f}")
        bar.update()

    states, epochs = [], []
    for checkpoint in train(model, train_split.inputs, train_split.labels, plan.config.recipe,
                            torch.Generator().manual_seed(seed), dataset.input_shape, on_epoch):
        states.append({name: t.detach().cpu().numpy().copy() for name, t in model.state_dict().items()})
        epochs.append(checkpoint.epoch)
    bar.close()
    training = {"training": plan.config.training_config(plan.data_source), "seed": seed, "checkpoint_epochs": epochs,
                "final_train_loss": train_loss}
    return training, states


def run_unit(plan: Plan, dataset: Dataset, seed: int, device: torch.device, code: str, progress: bool = True,
             known: Reused | None = None) -> ScoreTable:
    """Train one model (or load its stored checkpoints), then probe it at every checkpoint; its score table.

    ``known`` holds columns already computed for this unit, which are not recomputed (their cost is the
    one recorded where they were computed); ``code``
    is the git SHA of the harness when the run began (files edited during a run do not count).
    """
    config = plan.config
    known = known or Reused()
    torch.manual_seed(seed)
    statistics = dataset.channel_statistics()
    model = build_model(config.model, dataset.input_shape, dataset.n_classes,
                        statistics if config.normalize else None).to(device)
    splits = {
        name: ProbeSplit(
            inputs=torch.as_tensor(split.inputs, device=device),
            labels=torch.as_tensor(split.labels, device=device),
            trusted_labels=name == "train" or config.label_mode == "true",
            noisy=split.noisy,
        )
        for name, split in dataset.splits().items()
    }
    probe = Probe(splits, [registry.create(spec) for spec in plan.specs], dataset.input_shape, config.probe_batch_size,
                  known.columns, getattr(torch, config.state_dtype))
    description = f"{dataset.name} {config.model} seed {seed}"
    seconds = {"train": 0.0}  # then the probe's "probe" and "finish" (detectors and final scores)
    if (checkpoints := readable(load_checkpoints, plan.checkpoints_path(seed))) is not None:
        states, training = checkpoints
    else:
        started = time.perf_counter()
        with out_of_memory_advice("training", "batch_size", config.batch_size):
            training, states = train_checkpoints(plan, model, splits["train"], dataset, seed, description, progress)
        seconds["train"] = time.perf_counter() - started
        save_checkpoints(plan.checkpoints_path(seed), states, training)
    schedule = checkpoints_of(training, config.recipe, len(splits["train"]))
    with tqdm(total=len(splits) * len(states), desc=f"{description}: probing", unit="pass",
              disable=not progress, file=sys.stderr) as bar, \
            out_of_memory_advice("probing", "probe_batch_size", config.probe_batch_size):
        columns = probe.run(model, [(c, {k: torch.from_numpy(v) for k, v in s.items()}) for c, s in zip(schedule, states)],
                            bar.update)
    for name, split in dataset.splits().items():  # what the data knows of each example, beside its scores
        if split.boundary_distance is not None:
            columns[name]["boundary_distance"] = split.boundary_distance
    seconds.update(probe.seconds)
    for spec, error in probe.failures.items():
        print(f"warning: scorer {spec} failed on seed {seed} and is reported as NaN: {error}", file=sys.stderr)
    meta = {
        "dataset": dataset.name,
        "model": config.model,
        "seed": seed,
        "label_mode": config.label_mode,
        "config_hash": plan.config_hash,
        "config": plan.unit_config,
        "scorers": plan.specs,
        "failures": probe.failures,
        "observed": {spec: [c.epoch for c in schedule if c.index in probe.observed[spec]]  # for tasks comparing windows
                     for spec in plan.specs},
        "reused": sorted(known.columns),
        "ood_splits": list(dataset.ood),
        "ood_kinds": {split: dataset.ood_kinds.get(split, "covariate") for split in dataset.ood},
        "ood_paired": [split for split, images in dataset.ood.items() if images.paired_with_test],  # the OoD task's
        "classes": list(dataset.classes),
        "input_statistics": {"mean": statistics[0], "std": statistics[1], "normalized": config.normalize},
        "accuracy": {name: float(np.mean(table["pred"] == table["label"])) for name, table in columns.items()},
        "final_train_loss": training["final_train_loss"],
        "seconds": seconds,
        "cost": {**known.cost, **probe.cost},  # per scorer: seconds and peak state bytes (``bench.probe``)
        "provenance": provenance(device, plan.config_hash, code),
    }
    return ScoreTable(meta, columns)


def compute_unit(plan: Plan, dataset: Dataset, seed: int, device: torch.device, code: str, progress: bool,
                 model_free: Reused) -> ScoreTable:
    """A unit that is not on disk: what earlier runs computed for it is reused, the rest is computed."""
    context = {key: value for key, value in plan.unit_config.items() if key != "scorers"}
    wanted = {full: spec for spec, full in plan.full_specs.items()}
    earlier = plan.store.reusable_columns(dataset.name, plan.config.model, seed, context, wanted)
    if progress and earlier.columns:
        computing = [spec for spec in plan.specs if spec not in earlier.columns and spec not in model_free.columns]
        print(f"{dataset.name} {plan.config.model} seed {seed}: reusing {len(earlier.columns)} scores computed by an earlier "
              f"run in {plan.store.out_dir}; computing {', '.join(computing) or 'the predictions'}", file=sys.stderr)
    return run_unit(plan, dataset, seed, device, code, progress, model_free | earlier)
