"""Scores built on per-example parameter gradients of the cross-entropy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from bench.api import (EMBEDDING, LOGITS, PARAM_GRAD_NORM, Batch, Checkpoint, CheckpointScore, over_training, positive,
                       register)
from bench.gradients import last_layer_grad
from scorers.dynamics import EpochChoice, FinalModel


@register
class GraNd(EpochChoice, CheckpointScore):
    """Norm of the gradient of the loss over all parameters, early in training (``epoch``) or averaged (``epoch=none``).

    Computed for a whole batch (``bench.gradients``): read off one backward pass for models
    made of Linear and Conv2d layers, else with ``torch.func.vmap(grad)``, else one example at a time.
    """

    name = "grand"
    family = "gradient"
    reference = "Paul, Ganguli & Dziugaite, NeurIPS 2021 (arXiv 2107.07075); mansheej/data_diet"
    needs = frozenset({PARAM_GRAD_NORM})
    reduce = "mean"

    def value(self, batch: Batch) -> torch.Tensor:
        return batch[PARAM_GRAD_NORM]


@register
class TracIn(CheckpointScore):
    """TracInCP self-influence: the sum over every checkpoint of the learning rate times the squared norm of the
    gradient of the example's loss (its class: ``batch.target``) over all parameters (Pruthi et al.'s TracIn(z, z)).

    A checkpoint's rate is that of the optimizer steps just before it (the epoch's, as the paper takes it); the
    checkpoint at initialisation, when scheduled, counts with the first step's. With AdamW it is the nominal rate,
    not the per-parameter step size. The gradient norms are GraNd's (``bench.gradients``).
    """

    name = "tracin"
    family = "gradient"
    reference = "Pruthi et al., NeurIPS 2020 (arXiv 2002.08484), TracInCP self-influence; frederick0329/TracIn"
    needs = frozenset({PARAM_GRAD_NORM})
    reduce = "sum"

    def lacking(self, schedule: Sequence[Checkpoint], observed: frozenset[int]) -> str | None:
        if any(schedule[index].lr is None for index in observed):
            return ("it weighs each checkpoint by its learning rate, which these checkpoints do not carry; give the "
                    "rates in a checkpoints.json manifest (bench.recorder writes one)")
        return over_training(observed)

    def value(self, batch: Batch) -> torch.Tensor:
        return batch.checkpoint.lr * batch[PARAM_GRAD_NORM].double() ** 2  # known: ``lacking`` skips it otherwise


DETECTORS = ("iforest", "l1", "l2")


@register
class OGA(FinalModel, CheckpointScore):
    """Outlier Gradient Analysis: how much an example's last-layer gradient stands out.

    The gradient of the final model's loss w.r.t. the last layer's weight, ``(p - onehot(y)) h^T``
    in closed form. ``detector=iforest`` (the official choice) fits an Isolation Forest
    (100 trees, seed 0) on the training split's gradients and scores every split with its
    continuous anomaly score; ``l1`` and ``l2`` score the gradient's norm, which needs no fit.
    """

    name = "oga"
    family = "gradient"
    reference = "Chhabra et al., ICML 2025 (arXiv 2405.03869); anshuman23/outlier-gradient-analysis"
    needs = frozenset({LOGITS, EMBEDDING})
    reduce = "last"

    def __init__(self, detector: str = "iforest") -> None:
        if detector not in DETECTORS:
            raise ValueError(f"oga: detector={detector!r} is not one of {', '.join(DETECTORS)}")
        self.detector = detector

    def value(self, batch: Batch) -> torch.Tensor:
        grad = last_layer_grad(batch[LOGITS], batch.target, batch[EMBEDDING]).flatten(1)
        if self.detector == "iforest":
            return grad.float()
        return grad.abs().sum(1) if self.detector == "l1" else grad.norm(dim=1)

    def finish(self, reduced: dict, split: str) -> np.ndarray:
        if self.detector != "iforest":
            return reduced[split].astype(np.float64)
        if not hasattr(self, "forest_"):
            from sklearn.ensemble import IsolationForest

            self.forest_ = IsolationForest(n_estimators=100, random_state=0).fit(reduced["train"])
        return -self.forest_.score_samples(reduced[split])


@register
class GradNorm(FinalModel, CheckpointScore):
    """GradNorm: minus the L1 norm of the gradient, w.r.t. the last layer's weight, of the cross-entropy between the
    softmax of ``logits / T`` and the all-ones target (OpenOOD's, a sum over the classes).

    In closed form ``||C p - 1||_1 ||h||_1 / T``, with ``p = softmax(z / T)``, ``C`` classes and ``h``
    the embedding: no backward pass. A small norm (a flat softmax) looks OoD. Default
    ``temperature=1``: OpenOOD ``gradnorm_postprocessor.py`` (which has no temperature) and the
    paper's code."""

    name = "gradnorm"
    family = "gradient"
    reference = "Huang, Geng & Li, NeurIPS 2021 (arXiv 2110.00218); OpenOOD gradnorm_postprocessor.py"
    needs = frozenset({LOGITS, EMBEDDING})
    reduce = "last"

    def __init__(self, temperature: float = 1.0) -> None:
        positive(self.name, "temperature", temperature, 1)
        self.temperature = float(temperature)

    def value(self, batch: Batch) -> torch.Tensor:
        logits = batch[LOGITS].double()
        p = torch.softmax(logits / self.temperature, dim=1)
        h = batch[EMBEDDING].double().flatten(1)
        return -(logits.shape[1] * p - 1).abs().sum(1) * h.abs().sum(1) / self.temperature
