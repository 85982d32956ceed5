"""Scores read from the logits the model gives an example during training."""

from __future__ import annotations

import torch
from torch.nn import functional

from bench.api import LOGITS, Batch, Checkpoint, SummedScorer
from bench.registry import register


@register
class ActionScore(SummedScorer):
    """Cross-entropy of the target class summed over the checkpoints (the loss accumulated over training)."""

    name = "action-score"
    family = "training dynamics"
    reference = "Arriaga & Valdenegro-Toro, arXiv 2011.11461 (action scores / loss accumulation)"
    needs = frozenset({LOGITS})

    def term(self, batch: Batch) -> torch.Tensor:
        return functional.cross_entropy(batch.logits, batch.target, reduction="none")


@register
class MaxSoftmax(SummedScorer):
    """Negated maximum softmax probability of the final model: the label-free confidence baseline."""

    name = "max-softmax"
    family = "confidence"
    reference = "Hendrycks & Gimpel, ICLR 2017 (maximum softmax probability baseline)"
    needs = frozenset({LOGITS})

    def observes(self, checkpoint: Checkpoint) -> bool:
        return checkpoint.is_last

    def term(self, batch: Batch) -> torch.Tensor:
        return -functional.softmax(batch.logits, dim=1).max(dim=1).values
