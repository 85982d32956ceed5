"""Scores read from the logits the model gives an example during training."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional

from bench.api import LOGITS, Batch, Checkpoint, DynamicsScorer
from bench.registry import register


class _PerExampleSum(DynamicsScorer):
    """Base for scores that add up one float per example per observed checkpoint."""

    needs = frozenset({LOGITS})

    def __init__(self) -> None:
        self._sums: dict[str, np.ndarray] = {}

    def start(self, split: str, size: int) -> None:
        self._sums[split] = np.zeros(size, dtype=np.float64)

    def update(self, batch: Batch, checkpoint: Checkpoint) -> None:
        self._sums[batch.split][batch.index.cpu().numpy()] += self.term(batch).double().cpu().numpy()

    def term(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def scores(self, split: str) -> np.ndarray:
        return self._sums[split].copy()


@register
class ActionScore(_PerExampleSum):
    """Cross-entropy of the target class summed over the checkpoints (the loss accumulated over training)."""

    name = "action-score"
    family = "training dynamics"
    reference = "Arriaga & Valdenegro-Toro, arXiv 2011.11461 (action scores / loss accumulation)"

    def term(self, batch: Batch) -> torch.Tensor:
        return functional.cross_entropy(batch.logits, batch.target, reduction="none")


@register
class MaxSoftmax(_PerExampleSum):
    """Negated maximum softmax probability of the final model: the label-free confidence baseline."""

    name = "max-softmax"
    family = "confidence"
    reference = "Hendrycks & Gimpel, ICLR 2017 (maximum softmax probability baseline)"

    def observes(self, checkpoint: Checkpoint) -> bool:
        return checkpoint.is_last

    def term(self, batch: Batch) -> torch.Tensor:
        return -functional.softmax(batch.logits, dim=1).max(dim=1).values
