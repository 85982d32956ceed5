"""Scores read from the logits the model gives an example at the checkpoints of training.

All take the class in ``batch.target``: the training label on the training split, the
predicted class at that checkpoint on unlabeled splits. They read end-of-epoch evaluations
(as Kwok et al., action scores and cartography do), not minibatch-time logits (as the
original forgetting and AUM code do).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional

from bench.api import LOGITS, Batch, Checkpoint, CheckpointScore, at_least, over_training, register


def target_value(values: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return values.gather(1, target[:, None])[:, 0]


def largest_other(values: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The largest entry of each row apart from the target's."""
    return values.scatter(1, target[:, None], float("-inf")).max(dim=1).values


class EpochChoice:
    """Observe the first checkpoint at or after ``self.epoch``, or every checkpoint when it is None; a fraction
    of an epoch picks a checkpoint in mid-epoch (``checkpoint_unit = "step"``), 0 the one at initialisation."""

    epoch: float | None
    _at: float | None = None  # the epoch of the checkpoint chosen

    def __init__(self, epoch: float | None = 1) -> None:
        at_least(self.name, "epoch", epoch, 0, "every checkpoint")
        self.epoch = epoch

    def observes(self, checkpoint: Checkpoint) -> bool:
        if self.epoch is None:
            return True
        if checkpoint.epoch is None:  # a lone final model of unknown training
            return False
        if self._at is None and checkpoint.epoch >= self.epoch:
            self._at = checkpoint.epoch
        return checkpoint.epoch == self._at

    def lacking(self, schedule: Sequence[Checkpoint], observed: frozenset[int]) -> str | None:
        if self.epoch is None:
            return over_training(observed)
        if self.epoch == 0 and schedule[0].epoch != 0:
            return "it reads the model at initialisation (epoch=0), and no checkpoint is at epoch 0"
        if not observed:
            known = [c.epoch for c in schedule if c.epoch is not None]
            return (f"no checkpoint is at or after epoch {self.epoch:g}"
                    + (f" (the last is at {known[-1]:g})" if known else " (the checkpoints carry no epoch)"))
        return None


class FinalModel:
    """Observe the last checkpoint only: a function of the final model."""

    def observes(self, checkpoint: Checkpoint) -> bool:
        return checkpoint.is_last


class _LogitScore(CheckpointScore):
    family = "training dynamics"
    needs = frozenset({LOGITS})
    reduce = "mean"

    def lacking(self, schedule: Sequence[Checkpoint], observed: frozenset[int]) -> str | None:
        return over_training(observed)


@register
class ActionScore(_LogitScore):
    """Cross-entropy of the target class summed over the checkpoints (the loss accumulated over training)."""

    name = "action-score"
    reference = "Arriaga & Valdenegro-Toro, arXiv 2011.11461 (action scores / loss accumulation)"
    reduce = "sum"

    def value(self, batch: Batch) -> torch.Tensor:
        return functional.cross_entropy(batch[LOGITS], batch.target, reduction="none")


@register
class Loss(ActionScore):
    """Cross-entropy of the target class averaged over the checkpoints."""

    name = "loss"
    reference = "mean loss over training, as in Kwok et al. 2024 (arXiv 2401.01867) `avgloss`"
    reduce = "mean"


@register
class EL2N(EpochChoice, _LogitScore):
    """L2 norm of softmax minus one-hot, early in training (``epoch``) or averaged over it (``epoch=none``)."""

    name = "el2n"
    reference = "Paul, Ganguli & Dziugaite, NeurIPS 2021 (arXiv 2107.07075); mansheej/data_diet"

    def value(self, batch: Batch) -> torch.Tensor:
        logits = batch[LOGITS]
        return (functional.softmax(logits, dim=1) - functional.one_hot(batch.target, logits.shape[1])).norm(dim=1)


@register
class AUM(_LogitScore):
    """Area under the margin: the logit of the target minus the largest other logit, averaged, negated."""

    name = "aum"
    reference = "Pleiss et al., NeurIPS 2020 (arXiv 2001.10528); asappresearch/aum"

    def value(self, batch: Batch) -> torch.Tensor:
        return largest_other(batch[LOGITS], batch.target) - target_value(batch[LOGITS], batch.target)


@register
class Margin(_LogitScore):
    """Softmax probability of the target minus the largest other probability, averaged, negated."""

    name = "margin"
    reference = "softmax margin averaged over training, Kwok et al. 2024 (arXiv 2401.01867) `margin`"

    def value(self, batch: Batch) -> torch.Tensor:
        probs = functional.softmax(batch[LOGITS], dim=1)
        return largest_other(probs, batch.target) - target_value(probs, batch.target)


@register
class CartographyConfidence(_LogitScore):
    """Mean softmax probability of the target over training, negated: low confidence is hard to learn."""

    name = "cartography-confidence"
    reference = "Swayamdipta et al., EMNLP 2020 (arXiv 2009.10795) data maps, `confidence`; allenai/cartography"

    def value(self, batch: Batch) -> torch.Tensor:
        return -target_value(functional.softmax(batch[LOGITS], dim=1), batch.target)


@register
class CartographyVariability(_LogitScore):
    """Standard deviation (ddof 0) of the target's softmax probability over training: high is ambiguous."""

    name = "cartography-variability"
    reference = "Swayamdipta et al., EMNLP 2020 (arXiv 2009.10795) data maps, `variability`; allenai/cartography"
    reduce = "std"

    def value(self, batch: Batch) -> torch.Tensor:
        return target_value(functional.softmax(batch[LOGITS], dim=1), batch.target)


@register
class Forgetting(_LogitScore):
    """Forgetting events: how often an example goes from correct to wrong between checkpoints.

    The untrained model counts as wrong. An example never learned at any checkpoint ranks
    above every learned one: it scores the number of checkpoints, more than any count of
    events can reach (Toneva et al. give it the number of presentations).
    """

    name = "forgetting"
    reference = "Toneva et al., ICLR 2019 (arXiv 1812.05159); mtoneva/example_forgetting"
    reduce = {"events": "transitions", "learned": "any", "checkpoints": "count"}

    def value(self, batch: Batch) -> dict[str, torch.Tensor]:
        correct = batch[LOGITS].argmax(1) == batch.target
        return {"events": correct, "learned": correct}

    def finish(self, reduced: dict, split: str) -> np.ndarray:
        state = reduced[split]
        return np.where(state["learned"], state["events"], state["checkpoints"]).astype(np.float64)


@register
class MaxSoftmax(FinalModel, CheckpointScore):
    """Negated maximum softmax probability of the final model: the label-free confidence baseline."""

    name = "max-softmax"
    family = "output-based"
    reference = "Hendrycks & Gimpel, ICLR 2017 (maximum softmax probability baseline)"
    needs = frozenset({LOGITS})
    reduce = "last"

    def value(self, batch: Batch) -> torch.Tensor:
        return -functional.softmax(batch[LOGITS], dim=1).max(dim=1).values


@register
class Entropy(MaxSoftmax):
    """Entropy of the final model's softmax: label-free, high when the model is unsure."""

    name = "entropy"
    reference = "predictive entropy of the final model, Kwok et al. 2024 (arXiv 2401.01867) `ent`"

    def value(self, batch: Batch) -> torch.Tensor:
        logits = batch[LOGITS]
        return -(functional.softmax(logits, dim=1) * functional.log_softmax(logits, dim=1)).sum(dim=1)
