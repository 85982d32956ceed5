"""Training: minibatch SGD (or AdamW) over an in-memory split, yielding at each checkpoint of the schedule.

The recipe is a setting: the optimizer, the learning-rate schedule over the optimizer steps,
augmentation of colour or gray images on the device (random crops of the zero-padded image,
horizontal flips), mixed precision, and checkpoints every so many epochs or optimizer steps,
with an optional one at initialisation (epoch 0).

The trainer knows nothing of scoring. It is a generator: the caller probes the model
between two ``next`` calls, and the probe draws no random numbers, so training is the
same with or without scorers.
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from bench.api import Checkpoint
from bench.config import Recipe
from bench.data.filerows import FileRows
from bench.errors import BenchError

PADDING = 4  # pixels of zeros around an image before a random crop, as in the standard CIFAR recipe


def lr_factor(schedule: str, step: int, total: int) -> float:
    """The learning rate at optimizer step ``step`` of ``total``, as a fraction of ``lr``: ``constant``;
    ``step``, a tenth from half the steps and a hundredth from three quarters (the standard CIFAR recipe's
    epochs 100 and 150 of 200); ``cosine``, half a cosine down to 0; ``onecycle``, up linearly over the
    first 30% of the steps from 1/25, then a cosine down to 1/25 of that (Smith & Topin 2019)."""
    t = step / total
    if schedule == "constant":
        return 1.0
    if schedule == "step":
        return 0.01 if t >= 0.75 else 0.1 if t >= 0.5 else 1.0
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * t))
    warm = 0.3
    if t < warm:
        return 1 / 25 + (1 - 1 / 25) * t / warm
    return 1 / 625 + (1 - 1 / 625) * 0.5 * (1 + math.cos(math.pi * (t - warm) / (1 - warm)))


def checkpoint_lr(settings: Recipe, steps: int, total_steps: int) -> float:
    """The learning rate of the checkpoint after ``steps`` optimizer steps of ``total_steps``: that of the last step
    before it (as TracIn weighs a checkpoint by the epoch's rate), at initialisation that of the first step."""
    return settings.lr * lr_factor(settings.schedule, max(steps - 1, 0), total_steps)


def checkpoint_lrs(settings: Recipe, train_size: int, epochs: list[int | float]) -> list[float]:
    """The learning rates of the checkpoints at ``epochs`` of a training on ``train_size`` examples (``train``'s)."""
    steps_per_epoch = math.ceil(train_size / settings.batch_size)
    total_steps = settings.epochs * steps_per_epoch
    return [checkpoint_lr(settings, round(epoch * steps_per_epoch), total_steps) for epoch in epochs]


def crop_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image of the batch (n, c, h, w) cropped back to its size at a random offset from its
    zero-padded copy, and flipped left to right with probability 1/2; on the batch's device."""
    n, _, height, width = x.shape
    padded = functional.pad(x, (PADDING, PADDING, PADDING, PADDING))
    offsets = torch.randint(0, 2 * PADDING + 1, (2, n), generator=generator).to(x.device)
    flips = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    rows = offsets[0][:, None] + torch.arange(height, device=x.device)
    cols = offsets[1][:, None] + torch.arange(width, device=x.device)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    every = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[every, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def checkpoint_epochs(epochs: int, every: int) -> list[int]:
    """The epochs after which the model is probed."""
    return sorted({e for e in range(every, epochs + 1, every)} | {epochs})


def checkpoint_steps(settings: Recipe, steps_per_epoch: int) -> list[int]:
    """The optimizer steps after which the model is probed: every ``checkpoint_every`` epochs or
    steps, always after the last step, and after each of ``early_checkpoints``."""
    total_steps = settings.epochs * steps_per_epoch
    late = [step for step in settings.early_checkpoints if step >= total_steps]
    if late:
        raise BenchError(f"early_checkpoints asks for a checkpoint after step {late[0]}, but the training takes "
                         f"{total_steps} steps ({settings.epochs} epochs of {steps_per_epoch}); give steps below it")
    if settings.checkpoint_unit == "epoch":
        regular = [e * steps_per_epoch for e in checkpoint_epochs(settings.epochs, settings.checkpoint_every)]
    else:
        regular = checkpoint_epochs(total_steps, settings.checkpoint_every)
    return sorted({*regular, *settings.early_checkpoints})


class StreamedInputs:
    """A split's images read from their file a batch at a time onto ``device`` (an ``npy:`` dataset's,
    ``bench.data.filerows``), indexed by training and the probe as a tensor of the whole split is: the process holds
    the batch, not the split."""

    def __init__(self, rows: FileRows, device: torch.device) -> None:
        self.rows, self.device = rows, device

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: torch.Tensor | slice) -> torch.Tensor:
        return torch.from_numpy(self.rows[index if isinstance(index, slice) else index.cpu().numpy()]).to(self.device)

    def take(self, index: np.ndarray) -> StreamedInputs:
        return StreamedInputs(self.rows.take(index), self.device)


Inputs = torch.Tensor | StreamedInputs


def device_inputs(images: np.ndarray, device: torch.device) -> Inputs:
    """A split's images as training and the probe read them: one tensor on ``device``, or, for a whole ``.npy`` file
    memory-mapped (``npy:``), read from it a batch at a time."""
    rows = FileRows.of(images)
    return torch.as_tensor(images, device=device) if rows is None else StreamedInputs(rows, device)


def inputs_at(inputs: Inputs, index: torch.Tensor) -> Inputs:
    """The inputs at ``index``, still unread where they stream from a file."""
    return inputs.take(index.cpu().numpy()) if isinstance(inputs, StreamedInputs) else inputs[index]


def model_input(x: torch.Tensor, input_shape: tuple[int, ...]) -> torch.Tensor:
    """Stored inputs -> float model inputs: uint8 pixels scaled to [0, 1], channel axis added."""
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    return x.reshape(len(x), *input_shape)


def train(
    model: nn.Module,
    inputs: Inputs,
    labels: torch.Tensor,
    settings: Recipe,
    generator: torch.Generator,
    input_shape: tuple[int, ...],
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> Iterator[Checkpoint]:
    """Train ``model`` in place; yields at every checkpoint of the schedule with the model in train mode.

    ``on_epoch(epoch, mean_loss, accuracy)`` is called after every epoch (for progress bars).
    """
    if settings.optimizer == "adamw":
        optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    else:
        optimizer = torch.optim.SGD(
            model.parameters(), lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay
        )
    n = len(labels)
    steps_per_epoch = math.ceil(n / settings.batch_size)
    marks = set(checkpoint_steps(settings, steps_per_epoch))
    within_epochs = marks if settings.checkpoint_unit == "step" else set(settings.early_checkpoints)
    total = len(marks) + settings.checkpoint_at_init
    total_steps = settings.epochs * steps_per_epoch
    done = 0  # checkpoints yielded

    def checkpoint(steps: int) -> Checkpoint:
        nonlocal done
        done += 1
        epoch = steps // steps_per_epoch if steps % steps_per_epoch == 0 else steps / steps_per_epoch
        return Checkpoint(index=done - 1, epoch=epoch, total=total, lr=checkpoint_lr(settings, steps, total_steps))

    if settings.checkpoint_at_init:
        yield checkpoint(0)
    autocast, scaler = mixed_precision(settings.amp, labels.device)
    steps = 0
    for epoch in range(1, settings.epochs + 1):
        model.train()
        order = torch.randperm(n, generator=generator).to(labels.device)
        total_loss = torch.zeros((), dtype=torch.float64, device=labels.device)
        correct = torch.zeros((), dtype=torch.int64, device=labels.device)
        for start in range(0, n, settings.batch_size):
            index = order[start : start + settings.batch_size]
            x = model_input(inputs[index], input_shape)
            if settings.augment == "crop-flip":
                x = crop_flip(x, generator)
            if settings.schedule != "constant":
                for group in optimizer.param_groups:
                    group["lr"] = settings.lr * lr_factor(settings.schedule, steps, total_steps)
            with autocast:
                logits = model(x)
                loss = nn.functional.cross_entropy(logits, labels[index])
            optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            steps += 1
            total_loss += loss.detach() * len(index)
            correct += (logits.argmax(1) == labels[index]).sum()
            if steps in within_epochs:
                yield checkpoint(steps)
        if on_epoch is not None:
            on_epoch(epoch, total_loss.item() / n, correct.item() / n)
        if steps in marks and steps not in within_epochs:
            yield checkpoint(steps)


def mixed_precision(amp: bool, device: torch.device) -> tuple[contextlib.AbstractContextManager, torch.amp.GradScaler | None]:
    """The context training's forward pass runs in, and the loss scaler: float16 autocast with loss
    scaling on CUDA, bfloat16 autocast elsewhere (its exponent range needs no scaling), or neither."""
    if not amp:
        return contextlib.nullcontext(), None
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16), torch.amp.GradScaler("cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16), None
