"""Training: minibatch SGD over an in-memory split, yielding at each checkpoint of the schedule.

The trainer knows nothing of scoring. It is a generator: the caller probes the model
between two ``next`` calls, and the probe draws no random numbers, so training is the
same with or without scorers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn

from bench.api import Checkpoint


@dataclass(frozen=True)
class TrainSettings:
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    checkpoint_every: int  # a checkpoint every this many epochs, and always after the last


def checkpoint_epochs(epochs: int, every: int) -> list[int]:
    """The epochs after which the model is probed."""
    return sorted({e for e in range(every, epochs + 1, every)} | {epochs})


def model_input(x: torch.Tensor, input_shape: tuple[int, ...]) -> torch.Tensor:
    """Stored inputs -> float model inputs: uint8 pixels scaled to [0, 1], channel axis added."""
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    return x.reshape(len(x), *input_shape)


def train(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    settings: TrainSettings,
    generator: torch.Generator,
    input_shape: tuple[int, ...],
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> Iterator[Checkpoint]:
    """Train ``model`` in place; yields after every checkpoint epoch with the model in train mode.

    ``on_epoch(epoch, mean_loss, accuracy)`` is called after every epoch (for progress bars).
    """
    optimizer = torch.optim.SGD(
        model.parameters(), lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay
    )
    schedule = checkpoint_epochs(settings.epochs, settings.checkpoint_every)
    n = len(labels)
    for epoch in range(1, settings.epochs + 1):
        model.train()
        order = torch.randperm(n, generator=generator).to(labels.device)
        total_loss = torch.zeros((), dtype=torch.float64, device=labels.device)
        correct = torch.zeros((), dtype=torch.int64, device=labels.device)
        for start in range(0, n, settings.batch_size):
            index = order[start : start + settings.batch_size]
            logits = model(model_input(inputs[index], input_shape))
            loss = nn.functional.cross_entropy(logits, labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.detach() * len(index)
            correct += (logits.argmax(1) == labels[index]).sum()
        if on_epoch is not None:
            on_epoch(epoch, total_loss.item() / n, correct.item() / n)
        if epoch in schedule:
            yield Checkpoint(index=schedule.index(epoch), epoch=epoch, total=len(schedule))
