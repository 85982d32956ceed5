"""Record checkpoints in your own training loop, in the layout ``bench score`` reads.

    recorder = Recorder("runs/seed0", model, optimizer)   # saves the untrained model as epoch=0.pt
    for epoch in range(epochs):
        for x, y in loader:
            ...
            optimizer.step()
            recorder.step()            # after optimizer.step(), before scheduler.step(): keeps the rate just used
        scheduler.step()
        recorder.end_epoch()           # saves epoch=E.pt every ``every`` epochs

Each save writes the model's state dict (``torch.save``) and then the manifest ``checkpoints.json``
with every file's epoch, optimizer step and learning rate (that of the steps just before it; at
initialisation, the first step's), the schedule the harness's own checkpoints carry, so that
TracIn and the windows of VoG read them as they read the harness's. Both are written atomically:
a training killed between two saves leaves the checkpoints saved so far, readable.

``lightning_recorder`` is the same as a Lightning callback, ``huggingface_recorder`` as a Hugging
Face ``TrainerCallback``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.checkpoints import MANIFEST
from bench.errors import BenchError
from bench.files import write_atomically


class Recorder:
    """Saves ``model``'s weights at initialisation (``at_init``) and after every ``every`` epochs, with the
    optimizer steps and learning rates of ``optimizer`` (its first parameter group's rate; None without one)."""

    def __init__(self, folder: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                 every: int = 1, at_init: bool = True) -> None:
        if every < 1:
            raise BenchError(f"Recorder(every={every}): save every 1 epoch or more")
        self.folder = Path(folder)
        if (self.folder / MANIFEST).exists():
            raise BenchError(f"{self.folder / MANIFEST} exists: a recorder starts a new run; give it an empty folder")
        self.model, self.optimizer, self.every = model, optimizer, every
        self.steps, self.epochs = 0, 0
        self.lr = self.current_lr()  # the rate of the step about to be taken: at initialisation, the first step's
        self.entries: list[dict[str, Any]] = []
        if at_init:
            self.save()

    def current_lr(self) -> float | None:
        return None if self.optimizer is None else float(self.optimizer.param_groups[0]["lr"])

    def step(self) -> None:
        """One optimizer step done: call it after ``optimizer.step()`` and before any ``scheduler.step()``."""
        self.steps += 1
        self.lr = self.current_lr()

    def end_epoch(self) -> None:
        """One epoch done: saves a checkpoint if the epoch is one of every ``every``."""
        self.epochs += 1
        if self.epochs % self.every == 0:
            self.save()

    def save(self) -> None:
        """Save the model now, as ``epoch=E.pt`` (E the epochs done), and list it in the manifest."""
        name = f"epoch={self.epochs}.pt"
        state = {key: value.detach().cpu().clone() for key, value in self.model.state_dict().items()}
        write_atomically(self.folder / name, lambda temporary: torch.save(state, temporary))
        lr = self.lr if self.lr is None or math.isfinite(self.lr) else None
        self.entries.append({"file": name, "epoch": self.epochs, "step": self.steps, "lr": lr})
        manifest = json.dumps({"checkpoints": self.entries}, indent=1)
        write_atomically(self.folder / MANIFEST, lambda temporary: temporary.write_text(manifest))


def lightning_recorder(folder: str | Path, every: int = 1, at_init: bool = True) -> Any:
    """A ``lightning.pytorch.Callback`` that records as ``Recorder`` does: the LightningModule's weights when training
    starts (``at_init``) and after every ``every`` epochs, with the steps and the rate of its first optimizer.
    The keys carry the LightningModule's attribute names (``model.``...), which ``bench score`` strips when the
    factory's network is that attribute."""
    from lightning.pytorch import Callback

    class LightningRecorder(Callback):
        def __init__(self) -> None:
            self.recorder: Recorder | None = None

        def on_train_start(self, trainer: Any, module: nn.Module) -> None:
            optimizer = trainer.optimizers[0] if trainer.optimizers else None
            self.recorder = Recorder(folder, module, optimizer, every, at_init)

        def on_before_optimizer_step(self, trainer: Any, module: nn.Module, optimizer: Any) -> None:
            self.recorder.lr = self.recorder.current_lr()  # the rate of this step: Lightning's schedulers move it after

        def on_train_batch_end(self, trainer: Any, module: nn.Module, *args: Any) -> None:
            self.recorder.steps = trainer.global_step  # optimizer steps, as Lightning counts them (accumulation too)

        def on_train_epoch_end(self, trainer: Any, module: nn.Module) -> None:
            self.recorder.end_epoch()

    return LightningRecorder()


def huggingface_recorder(folder: str | Path, every: int = 1, at_init: bool = True) -> Any:
    """A ``transformers.TrainerCallback`` that records as ``Recorder`` does: the Trainer's model when training
    starts (``at_init``) and after every ``every`` epochs, with the steps and the rate of its optimizer. The keys
    are the model's own; a model that holds the network under one attribute is stripped of it by ``bench score``."""
    from transformers import TrainerCallback

    class HuggingFaceRecorder(TrainerCallback):
        def __init__(self) -> None:
            self.recorder: Recorder | None = None

        def on_train_begin(self, args: Any, state: Any, control: Any, model: nn.Module = None, optimizer: Any = None,
                           **kwargs: Any) -> None:
            self.recorder = Recorder(folder, model, optimizer, every, at_init)

        def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.recorder.lr = self.recorder.current_lr()  # the rate of this step: the Trainer's scheduler moves it after

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.recorder.steps = state.global_step

        def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.recorder.end_epoch()

    return HuggingFaceRecorder()
