"""One unit (dataset x model x seed): train the model, storing its state at every checkpoint, then probe it.

A unit takes what is already computed: the stored checkpoints of the same training (no
training then), scores of earlier units with the same training and label mode (found by
full spec), and the model-free columns of another seed; it computes only the rest.

With ``cross_fit = K`` (K >= 2), and a scorer to compute that needs ``heldout_logits``, the
unit also has K cross-fitting models (cleanlab's ``estimate_cv_predicted_probabilities``):
the training split is dealt into K folds, stratified by class (the training labels, noisy
ones where the run makes them noisy) in an order drawn from the seed, and model k is trained
with the unit's recipe, model, device and threads on every fold but k, from a seed derived
from the unit's seed and k. Only their final states are kept, in one file beside the
checkpoints, written once all K are trained (``<checkpoints stem>_folds<K>.npz``: states by
fold, and a ``meta`` with the fold of each training example and the seconds they took). The
unit's own model is the one trained without folds, whose checkpoints are shared with runs
that do not cross-fit. A normalisation (``normalize``) keeps the training split's statistics
for every fold model: a per-channel mean and std, the same fixed first layer as the unit's.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from bench import registry
from bench.api import Checkpoint
from bench.checkpoints import load_state
from bench.config import Recipe
from bench.data import Dataset
from bench.data.dataset import stratified_sample
from bench.errors import BenchError
from bench.models import build_model
from bench.plan import Plan
from bench.probe import Folds, Probe, ProbeSplit, ShardMap, Sharding
from bench.provenance import provenance
from bench.signals import HELDOUT_LOGITS
from bench.store import Reused, ScoreTable, load_checkpoints, readable, save_checkpoints
from bench.training import checkpoint_lrs, device_inputs, inputs_at, train


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
    training = {"training": plan.config.training_config(plan.training_source), "seed": seed, "checkpoint_epochs": epochs,
                "final_train_loss": train_loss}
    return training, states


CROSS_FIT_STREAM = 0x63726F73  # keeps the folds' random numbers apart from every other use of a unit's seed


def _seeds(seed: int, part: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([CROSS_FIT_STREAM, seed % 2**64, part])


def fold_assignment(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Each example's fold in 0..k-1, stratified by class: the examples, class by class in an order drawn from
    ``seed``, are dealt to the folds in turn, so each fold holds every class's examples, and all examples, to
    within one."""
    order = np.lexsort((np.random.default_rng(_seeds(seed, 0)).permutation(len(labels)), labels))
    fold = np.empty(len(labels), dtype=np.int64)
    fold[order] = np.arange(len(labels)) % k
    return fold


def fold_seed(seed: int, fold: int) -> int:
    """The seed of cross-fitting model ``fold``'s initialisation and batch order, derived from the unit's seed."""
    return int(_seeds(seed, fold + 1).generate_state(1, np.uint64)[0])


def folds_path(plan: Plan, seed: int) -> Path:
    checkpoints = plan.checkpoints_path(seed)
    return checkpoints.with_name(f"{checkpoints.stem}_folds{plan.config.cross_fit}.npz")


def train_folds(plan: Plan, new_model: Callable[[], torch.nn.Module], train_split: ProbeSplit,
                input_shape: tuple[int, ...], seed: int, description: str,
                progress: bool) -> tuple[dict, list[dict[str, np.ndarray]]]:
    """Train the ``cross_fit`` models, model k on the training split without fold k; their record (the training, the
    fold of each example, the seconds) and final states."""
    k, epochs = plan.config.cross_fit, plan.config.epochs
    if k > len(train_split):
        raise BenchError(f"cross_fit = {k} folds for {len(train_split)} training examples; give at most "
                         f"{len(train_split)}, or 0 for no cross-fitting")
    fold = fold_assignment(train_split.labels.cpu().numpy(), k, seed)
    started, states = time.perf_counter(), []
    # fork_rng: the run's own random stream is left as it was
    with tqdm(total=k * epochs, desc=f"{description}: cross-fitting", unit="epoch", disable=not progress,
              file=sys.stderr) as bar, torch.random.fork_rng(devices=[]):
        for held_out in range(k):
            torch.manual_seed(fold_seed(seed, held_out))
            model = new_model()
            keep = torch.as_tensor(np.flatnonzero(fold != held_out), device=train_split.labels.device)
            for _ in train(model, inputs_at(train_split.inputs, keep), train_split.labels[keep], plan.config.recipe,
                           torch.Generator().manual_seed(fold_seed(seed, held_out)), input_shape,
                           lambda *_: bar.update()):
                pass  # only the final state is kept
            states.append({name: t.detach().cpu().numpy().copy() for name, t in model.state_dict().items()})
    record = {"training": plan.config.training_config(plan.training_source), "seed": seed, "cross_fit": k,
              "fold": fold.tolist(), "seconds": time.perf_counter() - started}
    return record, states


def cross_fitted(plan: Plan, new_model: Callable[[], torch.nn.Module], train_split: ProbeSplit,
                 input_shape: tuple[int, ...], seed: int, description: str,
                 progress: bool) -> tuple[Folds, dict, float]:
    """The unit's cross-fitting models, stored or trained (then stored, all at once); with their record and the
    seconds spent training them here (0 when stored)."""
    path, spent = folds_path(plan, seed), 0.0
    if (stored := readable(load_checkpoints, path)) is not None:
        states, record = stored
    else:
        started = time.perf_counter()
        with out_of_memory_advice("training", "batch_size", plan.config.batch_size):
            record, states = train_folds(plan, new_model, train_split, input_shape, seed, description, progress)
        spent = time.perf_counter() - started
        save_checkpoints(path, states, record)
    folds = Folds(np.asarray(record["fold"], dtype=np.int64),
                  [{name: torch.from_numpy(array) for name, array in state.items()} for state in states])
    return folds, record, spent


def probed_training_examples(labels: np.ndarray, size: int) -> np.ndarray | None:
    """The indices of the training examples the probe scores, ``size`` drawn per class in proportion (seed 0, the
    same in every unit); None for all of them (``size`` 0, or at least the split's)."""
    return stratified_sample(labels, size, seed=0) if 0 < size < len(labels) else None


def model_states(plan: Plan, model: torch.nn.Module, train_split: ProbeSplit, dataset: Dataset, seed: int,
                 description: str, progress: bool) -> tuple[list[Checkpoint], list[dict[str, torch.Tensor]], dict,
                                                         dict[str, float]]:
    """The checkpoints to probe, the model's state at each, the training record, and the seconds spent here: the
    user's checkpoints (``config.checkpoints``), loaded; else the stored ones of the same training; else a training
    now, then stored."""
    if (source := plan.source(seed)) is not None:
        started = time.perf_counter()
        states = [load_state(file, model) for file in source.files]
        return source.schedule(), states, source.record(), {"train": 0.0, "load": time.perf_counter() - started}
    seconds = {"train": 0.0}
    if (stored := readable(load_checkpoints, plan.checkpoints_path(seed))) is not None:
        arrays, training = stored
    else:
        started = time.perf_counter()
        with out_of_memory_advice("training", "batch_size", plan.config.batch_size):
            training, arrays = train_checkpoints(plan, model, train_split, dataset, seed, description, progress)
        seconds["train"] = time.perf_counter() - started
        save_checkpoints(plan.checkpoints_path(seed), arrays, training)
    states = [{key: torch.from_numpy(value) for key, value in state.items()} for state in arrays]
    return checkpoints_of(training, plan.config.recipe, len(train_split)), states, training, seconds


def run_unit(plan: Plan, dataset: Dataset, seed: int, device: torch.device, code: str, progress: bool = True,
             known: Reused | None = None, map_shards: ShardMap | None = None) -> ScoreTable:
    """Train one model (or load its stored checkpoints), then probe it at every checkpoint; its score table.

    ``known`` holds columns already computed for this unit, which are not recomputed (their cost is the
    one recorded where they were computed); ``code``
    is the git SHA of the harness when the run began (files edited during a run do not count); ``map_shards`` runs
    the shards of a sharded probe on workers (``bench.probe.Sharding``; None: one after another, here).
    """
    config = plan.config
    known = known or Reused()
    torch.manual_seed(seed)
    statistics = dataset.channel_statistics()

    def new_model() -> torch.nn.Module:
        return build_model(config.model, dataset.input_shape, dataset.n_classes,
                           statistics if config.normalize else None).to(device)

    model = new_model()
    splits = {
        name: ProbeSplit(
            inputs=device_inputs(split.inputs, device),
            labels=torch.as_tensor(split.labels, device=device),
            trusted_labels=name == "train" or config.label_mode == "true",
            noisy=split.noisy,
        )
        for name, split in dataset.splits().items()
    }
    probed = dict(splits)  # the training split: trained on in full, scored on a sample (probe_train_size)
    sample = probed_training_examples(dataset.train.labels, config.probe_train_size)
    if sample is not None:
        probed["train"] = splits["train"].sample(sample)
    probe = Probe(probed, [registry.create(spec) for spec in plan.specs], dataset.input_shape, config.probe_batch_size,
                  known.columns, getattr(torch, config.state_dtype))
    description = f"{dataset.name} {config.model} seed {seed}"
    # the seconds of "train" (or "load"), then the probe's "probe" and "finish" (detectors and final scores)
    schedule, states, training, seconds = model_states(plan, model, splits["train"], dataset, seed, description, progress)
    folds, cross_fit = None, {"k": config.cross_fit, "done": False}
    if config.cross_fit and probe.wants(HELDOUT_LOGITS):
        folds, record, seconds["cross_fit"] = cross_fitted(plan, new_model, splits["train"], dataset.input_shape, seed,
                                                           description, progress)
        cross_fit.update(done=True, fold=record["fold"], seconds=record["seconds"])
        if sample is not None:
            folds = Folds(folds.fold[sample], folds.states)
    with tqdm(total=probe.passes(len(states), config.shards), desc=f"{description}: probing", unit="pass",
              disable=not progress, file=sys.stderr) as bar, \
            out_of_memory_advice("probing", "probe_batch_size", config.probe_batch_size):
        count = config.shards * config.checkpoint_shards
        sharding = Sharding(config.shards, lambda k: plan.store.shard_path(plan.unit_path(seed), k, count), map_shards,
                            config.checkpoint_shards)
        columns = probe.run(model, list(zip(schedule, states)), bar.update, folds, sharding)
    for name, split in dataset.splits().items():  # what the data knows of each example, beside its scores
        if split.boundary_distance is not None:
            columns[name]["boundary_distance"] = split.boundary_distance[columns[name]["id"]]
    seconds.update(probe.seconds)
    for spec, error in probe.failures.items():
        print(f"warning: scorer {spec} failed on seed {seed} and is reported as NaN: {error}", file=sys.stderr)
    for spec, reason in probe.skipped.items():
        print(f"note: scorer {spec} is skipped on seed {seed}: {reason}", file=sys.stderr)
    meta = {
        "dataset": dataset.name,
        "model": config.model,
        "seed": seed,
        "label_mode": config.label_mode,
        "config_hash": plan.config_hash,
        "config": plan.unit_config,
        "scorers": plan.specs,
        "failures": probe.failures,
        "skipped": probe.skipped,
        "observed": {spec: [c.epoch for c in schedule if c.index in probe.observed[spec]]  # for tasks comparing windows
                     for spec in plan.specs},
        "reused": sorted(known.columns),
        "ood_splits": list(dataset.ood),
        "ood_kinds": {split: dataset.ood_kinds.get(split, "covariate") for split in dataset.ood},
        "ood_paired": [split for split, images in dataset.ood.items() if images.paired_with_test],  # the OoD task's
        "ood_dropped": dataset.ood_dropped,  # split -> exact copies of in-distribution images dropped from it
        "classes": list(dataset.classes),
        "input_statistics": {"mean": statistics[0], "std": statistics[1], "normalized": config.normalize},
        "accuracy": {name: float(np.mean(table["pred"] == table["label"])) for name, table in columns.items()},
        "final_train_loss": training["final_train_loss"],
        **({"checkpoints": training["checkpoints"]} if "checkpoints" in training else {}),  # a user's files, digested
        "seconds": seconds,
        "cost": {**known.cost, **probe.cost},  # per scorer: seconds and peak state bytes (``bench.probe``)
        "provenance": provenance(device, plan.config_hash, code),
        **({"cross_fit": cross_fit} if config.cross_fit else {}),  # the folds; seconds: those their training took
        **({"shards": {"count": config.shards, "on": "this process" if map_shards is None else "Ray tasks",
                       **({"checkpoint_ranges": config.checkpoint_shards} if config.checkpoint_shards > 1 else {})}}
           if config.shards * config.checkpoint_shards > 1 else {}),  # how the probe ran
    }
    return ScoreTable(meta, columns)


def compute_unit(plan: Plan, dataset: Dataset, seed: int, device: torch.device, code: str, progress: bool,
                 model_free: Reused, map_shards: ShardMap | None = None) -> ScoreTable:
    """A unit that is not on disk: what earlier runs computed for it is reused, the rest is computed."""
    context = {key: value for key, value in plan.unit_config.items() if key != "scorers"}
    wanted = {full: spec for spec, full in plan.full_specs.items()}
    earlier = plan.store.reusable_columns(dataset.name, plan.config.model, seed, context, wanted)
    if progress and earlier.columns:
        computing = [spec for spec in plan.specs if spec not in earlier.columns and spec not in model_free.columns]
        print(f"{dataset.name} {plan.config.model} seed {seed}: reusing {len(earlier.columns)} scores computed by an earlier "
              f"run in {plan.store.out_dir}; computing {', '.join(computing) or 'the predictions'}", file=sys.stderr)
    return run_unit(plan, dataset, seed, device, code, progress, model_free | earlier, map_shards)
