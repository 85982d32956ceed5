"""The running state of a ``CheckpointScore``, kept by the harness: one ``Accumulator`` per
reduction and split, one ``Group`` for the variants of a scorer that share it.

The probe hands each batch to ``Group.update``, which feeds every state the values of the
batch's examples with their positions in the split; when a split has been seen at every
checkpoint, ``Group.reduce`` keeps its reduced values and frees the running state. States
live on the device, float64 for sums and moments (float32 on request, halving the state
of per-pixel scores), and do not grow with the checkpoints (the std is Welford's update). ``bench.api.REDUCTIONS`` says what each one computes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bench.api import Batch, Checkpoint, CheckpointScore


class Accumulator:
    """One reduction (a key of ``bench.api.REDUCTIONS``) over a split of ``size`` examples."""

    def __init__(self, reduction: str, size: int, dtype: torch.dtype = torch.float64) -> None:
        self.reduction = reduction
        self.size = size
        self.dtype = dtype  # of sums and moments
        self.seen: set[int] = set()  # checkpoint indices observed
        self.state: dict[str, torch.Tensor] = {}

    def _zeros(self, name: str, like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        if name not in self.state:
            self.state[name] = torch.zeros(self.size, *like.shape[1:], dtype=dtype, device=like.device)
        return self.state[name]

    def update(self, index: torch.Tensor, value: torch.Tensor | None, checkpoint: int) -> None:
        """Fold the values of the examples at ``index`` at checkpoint ``checkpoint`` into the state."""
        self.seen.add(checkpoint)
        if self.reduction == "count":
            self._zeros("count", index, torch.int64)[index] += 1
        elif self.reduction in ("sum", "mean"):
            self._zeros("sum", value, self.dtype)[index] += value.to(self.dtype)
        elif self.reduction == "std":
            value = value.flatten(1).to(self.dtype) if value.ndim > 1 else value.to(self.dtype)[:, None]
            state_mean, state_m2 = self._zeros("mean", value, self.dtype), self._zeros("m2", value, self.dtype)
            mean, m2 = state_mean[index], state_m2[index]
            delta = value - mean
            mean += delta / len(self.seen)
            m2 += delta * (value - mean)
            state_mean[index], state_m2[index] = mean, m2
        elif self.reduction == "last":
            self._zeros("last", value, value.dtype)[index] = value
        elif self.reduction == "transitions":
            previous, value = self._zeros("previous", value, torch.bool), value.bool()
            self._zeros("events", value, torch.int64)[index] += previous[index] & ~value
            previous[index] = value
        elif self.reduction == "any":
            self._zeros("any", value, torch.bool)[index] |= value.bool()
        else:
            raise ValueError(f"unknown reduction {self.reduction!r}")

    def result(self) -> np.ndarray:
        """The reduced value of every example of the split."""
        if not self.seen:
            raise ValueError("observed no checkpoint; check its parameters against the checkpoint schedule")
        state = self.state
        if self.reduction == "mean":
            return (state["sum"] / len(self.seen)).cpu().numpy()
        if self.reduction == "std":
            return (state["m2"] / len(self.seen)).sqrt().mean(dim=1, dtype=torch.float64).cpu().numpy()
        name = {"transitions": "events"}.get(self.reduction, self.reduction)
        return state[name].cpu().numpy()


class Group:
    """``CheckpointScore`` variants that differ only in their ``finish_params``: one pass, one state."""

    def __init__(self, scorers: list[CheckpointScore], dtype: torch.dtype = torch.float64) -> None:
        self.scorers = scorers
        self.dtype = dtype
        self.first = scorers[0]
        self.accumulators: dict[str, Accumulator] = {}  # state name -> accumulator, for the split being probed
        self.reduced: dict[str, Any] = {}  # split -> reduced values (an array, or a dict by state)

    @staticmethod
    def key(scorer: CheckpointScore) -> tuple:
        return type(scorer), tuple((k, v) for k, v in scorer.params.items() if k not in scorer.finish_params)

    def start(self, size: int) -> None:
        reduce = self.first.reduce
        states = {"": reduce} if isinstance(reduce, str) else reduce  # "": the one state of a single reduction
        self.accumulators = {name: Accumulator(reduction, size, self.dtype) for name, reduction in states.items()}

    def update(self, batch: Batch, checkpoint: Checkpoint) -> None:
        values = self.first.value(batch)
        single = "" in self.accumulators
        if single != isinstance(values, torch.Tensor):
            raise TypeError(f"value() returned a {type(values).__name__}; with reduce = {self.first.reduce!r} it must "
                            f"return {'a tensor' if single else 'a dict of tensors by state name'}")
        for name, accumulator in self.accumulators.items():
            value = None if accumulator.reduction == "count" else values if single else values[name]
            if value is not None and (value.ndim == 0 or len(value) != len(batch.index)):
                raise ValueError(f"value() returned shape {tuple(value.shape)} for a batch of {len(batch.index)} "
                                 "examples; it must return one value (or row) per example")
            accumulator.update(batch.index, value, checkpoint.index)

    def reduce(self, split: str) -> None:
        results = {name: accumulator.result() for name, accumulator in self.accumulators.items()}
        self.reduced[split] = results.get("", results)
        self.accumulators = {}
