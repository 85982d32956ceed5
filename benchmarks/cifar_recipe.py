"""The CPU recipe on the real CIFAR-10: one seed's training against its budget, and the accuracy it reaches.

The ``cifar10-cpu`` preset's training (its model, schedule, augmentation and normalisation, as ``bench run``
trains it: ``bench.training.train``, every checkpoint's state copied out) on the 50,000 training images of
CIFAR-10 found in the data roots (``BENCH_DATA``, e.g. ``../shared/data``), then its clean test accuracy over
the 10,000 test images. The ratio is the training's seconds over the budget of 20 minutes a seed on two CPU
cores (issue 30); the accuracy is set beside the VoG paper's 89.57% (ResNet-18, Sec. 4). Without CIFAR-10 in a
data root it says so and measures nothing; under ``BENCH_TINY`` it trains 1 epoch on 512 images and tests on 1,000.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from bench.config import load_preset
from bench.data import load_dataset
from bench.errors import BenchError
from bench.models import build_model
from bench.training import train
from benchmarks.common import report, sized

PRESET = "cifar10-cpu"
BUDGET_SECONDS = 20 * 60
PAPER_ACCURACY = 0.8957
SEED = 0


def test_accuracy(model: torch.nn.Module, inputs: np.ndarray, labels: np.ndarray, batch: int = 1000) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(labels), batch):
            logits = model(torch.as_tensor(inputs[start:start + batch]).float() / 255)
            correct += int((logits.argmax(1).numpy() == labels[start:start + batch]).sum())
    return correct / len(labels)


def run() -> None:
    config = load_preset(PRESET)
    try:
        dataset = load_dataset(config.dataset, corruptions=())
    except BenchError as error:
        print(f"cifar recipe: skipped, no CIFAR-10 in the data roots ({error})")
        return
    n, epochs = sized(len(dataset.train), 512), sized(config.epochs, 1)
    steps = epochs * -(-n // config.batch_size)  # the early checkpoints that fall within a BENCH_TINY training
    recipe = dataclasses.replace(config.recipe, epochs=epochs, checkpoint_every=min(config.checkpoint_every, epochs),
                                 early_checkpoints=[step for step in config.early_checkpoints if step < steps])
    torch.manual_seed(SEED)
    statistics = dataset.channel_statistics() if config.normalize else None
    model = build_model(config.model, dataset.input_shape, dataset.n_classes, statistics)
    inputs, labels = torch.as_tensor(dataset.train.inputs[:n]), torch.as_tensor(dataset.train.labels[:n])
    epoch_seconds: list[float] = []
    started = last = time.perf_counter()

    def on_epoch(epoch: int, loss: float, accuracy: float) -> None:
        nonlocal last
        epoch_seconds.append(time.perf_counter() - last)
        last = time.perf_counter()
        print(f"  epoch {epoch}: {epoch_seconds[-1]:.1f} s, loss {loss:.3f}, training accuracy {accuracy:.3f}",
              flush=True)

    states = [{name: t.detach().clone() for name, t in model.state_dict().items()}
              for _ in train(model, inputs, labels, recipe, torch.Generator().manual_seed(SEED), dataset.input_shape,
                             on_epoch)]
    seconds = time.perf_counter() - started
    tested = sized(len(dataset.test), 1000)
    accuracy = test_accuracy(model, dataset.test.inputs[:tested], dataset.test.labels[:tested])
    report("cifar recipe", seconds / BUDGET_SECONDS, "at most 1: 20 minutes of training a seed on two CPU cores", {
        "work": f"the {PRESET} preset's training: {config.model}, {epochs} epochs of {n} CIFAR-10 training images, "
                f"batch {recipe.batch_size}, {recipe.optimizer} lr {recipe.lr} {recipe.schedule}, augment "
                f"{recipe.augment}, normalize {config.normalize}, {len(states)} checkpoints, seed {SEED}",
        "training": f"{seconds:.1f} s ({np.median(epoch_seconds):.1f} s an epoch, median)",
        "clean test accuracy": f"{accuracy:.4f} over {tested} images (the VoG paper: {PAPER_ACCURACY})",
        "threads": str(torch.get_num_threads()),
    })
