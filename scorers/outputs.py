"""Post-hoc OoD scores read from the final model's outputs, as OpenOOD v1.5 computes them, negated.

OpenOOD's postprocessors return a confidence (larger = more in-distribution); each score here
is minus that confidence, so higher = more anomalous, and each default is the one of OpenOOD's
CIFAR-10 config (``configs/postprocessors/<name>.yml``), named in the class's docstring.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional

from bench.api import (LOGITS, Batch, CheckpointScore, Detector, Signal, at_least, odin_logits, positive, register,
                       validation_rows)
from scorers.dynamics import FinalModel


def max_softmax(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """The largest softmax probability of ``logits / temperature``, in float64 (at T=1000 the probabilities of
    different inputs differ in their 6th digit)."""
    return functional.softmax(logits.double() / temperature, dim=1).max(dim=1).values


class _OutputScore(FinalModel, CheckpointScore):
    family = "output-based"
    needs = frozenset({LOGITS})
    reduce = "last"


@register
class Energy(_OutputScore):
    """Free energy ``-T logsumexp(z / T)`` of the final model's logits ``z``.

    Default ``temperature=1``: OpenOOD ``configs/postprocessors/ebo.yml``."""

    name = "energy"
    reference = "Liu et al., NeurIPS 2020 (arXiv 2010.03759); OpenOOD ebo_postprocessor.py"

    def __init__(self, temperature: float = 1.0) -> None:
        positive(self.name, "temperature", temperature, 1)
        self.temperature = float(temperature)

    def value(self, batch: Batch) -> torch.Tensor:
        return -self.temperature * torch.logsumexp(batch[LOGITS] / self.temperature, dim=1)


@register
class MaxLogit(_OutputScore):
    """Negated largest logit of the final model (OpenOOD's MLS, ``maxlogit_postprocessor.py``; no parameters)."""

    name = "max-logit"
    reference = "Hendrycks et al., ICML 2022 (arXiv 1911.11132); OpenOOD maxlogit_postprocessor.py (mls)"

    def value(self, batch: Batch) -> torch.Tensor:
        return -batch[LOGITS].max(dim=1).values


@register
class GEN(_OutputScore):
    """Generalized entropy: the sum over the ``M`` largest softmax probabilities of ``p^gamma (1 - p)^gamma``.

    High when the probability mass is spread (OoD-like), low when one class takes it. Defaults
    ``gamma=0.1``, ``M=100`` (all classes when there are fewer): OpenOOD ``configs/postprocessors/gen.yml``.
    Unclamped, as OpenOOD's (pytorch-ood clamps p to [1e-7, 1 - 1e-7] and takes the mean, not the
    sum); in float64, where ``1 - p`` keeps its digits for a confident prediction."""

    name = "gen"
    reference = "Liu, Lochman & Zach, CVPR 2023 (GEN: generalized entropy); OpenOOD gen_postprocessor.py"

    def __init__(self, gamma: float = 0.1, M: int = 100) -> None:
        positive(self.name, "gamma", gamma, 0.1)
        at_least(self.name, "M", M, 1)
        self.gamma = float(gamma)
        self.M = M

    def value(self, batch: Batch) -> torch.Tensor:
        p = functional.softmax(batch[LOGITS].double(), dim=1)
        top = p.topk(min(self.M, p.shape[1]), dim=1).values
        return (top.pow(self.gamma) * (1 - top).pow(self.gamma)).sum(dim=1)


@register
class ODIN(_OutputScore):
    """ODIN: minus the largest softmax probability at ``temperature`` of the input moved by ``noise`` against the
    gradient's sign (the signal ``odin_logits``, one more backward and forward pass).

    Defaults ``temperature=1000``, ``noise=0.0014``: OpenOOD ``configs/postprocessors/odin.yml``. The
    model's input is the pixels in [0, 1] (a normalisation, when used, is its first layer), so
    ``noise`` is a step in pixel units; it is the same step as OpenOOD's, which moves the normalised
    input by ``noise / std`` per channel."""

    name = "odin"
    reference = "Liang, Li & Srikant, ICLR 2018 (arXiv 1706.02690); OpenOOD odin_postprocessor.py"

    def __init__(self, temperature: float = 1000.0, noise: float = 0.0014) -> None:
        positive(self.name, "temperature", temperature, 1000)
        at_least(self.name, "noise", noise, 0)
        self.temperature = float(temperature)  # floats: odin[temperature=1000] and [temperature=1000.0] share a signal
        self.noise = float(noise)

    @property
    def signal(self) -> Signal:
        return odin_logits(self.temperature, self.noise)

    @property
    def needs(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset({self.signal})

    def value(self, batch: Batch) -> torch.Tensor:
        return -max_softmax(batch[self.signal], self.temperature)


@register
class TempScaling(Detector):
    """Temperature scaling: minus the largest softmax probability of ``logits / T``, ``T`` fitted on held-out ID rows.

    ``T`` minimises the NLL of ``val_size`` training rows (``bench.api.validation_rows``, seed 0)
    with OpenOOD's optimiser: LBFGS(lr=0.01, max_iter=50) from T=1.5
    (``openood/postprocessors/temp_scaling_postprocessor.py``). Its 50 steps of 1% of a quasi-Newton
    step move T only part of the way to the NLL's minimum, as in OpenOOD. In float64, so refits give
    the same T bit for bit. Default
    ``val_size=1000``: the size of OpenOOD's CIFAR-10 ID validation split."""

    name = "temp-scaling"
    reference = "Guo et al., ICML 2017 (arXiv 1706.04599); OpenOOD temp_scaling_postprocessor.py"
    feature_spaces = (LOGITS,)

    def __init__(self, features: str = LOGITS, val_size: int = 1000) -> None:
        super().__init__(features)
        at_least(self.name, "val_size", val_size, 1)
        self.val_size = val_size

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> TempScaling:
        if y is None:
            raise ValueError("temp-scaling fits its temperature on labelled training logits; give the labels y")
        rows = validation_rows(len(X), self.val_size)
        logits = torch.as_tensor(np.asarray(X, dtype=np.float64)[rows])
        labels = torch.as_tensor(np.asarray(y)[rows], dtype=torch.long)
        temperature = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)  # OpenOOD's initial T
        optimizer = torch.optim.LBFGS([temperature], lr=0.01, max_iter=50)

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = functional.cross_entropy(logits / temperature, labels)
            loss.backward()
            return loss

        with torch.enable_grad():
            optimizer.step(closure)
        self.temperature_ = temperature.item()
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return -max_softmax(torch.as_tensor(np.asarray(X, dtype=np.float64)), self.temperature_).numpy()
