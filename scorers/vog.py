"""Variance of Gradients (Agarwal, D'souza & Hooker, CVPR 2022, arXiv 2008.11600).

At each checkpoint, S_t = gradient of the target class's softmax probability (the official
toy code; the default) or logit (the paper's text) w.r.t. the input, averaged over colour
channels. VoG is the mean over pixels of the per-pixel population standard deviation of S_t
over the checkpoints, as in the official code (chirag126/VOG): the square root is taken per
pixel, before the pixel mean. The variance is accumulated with Welford's
update in float64, so memory does not grow with the number of checkpoints.

Class normalisation (``norm``) turns VoG into a z-score within its class. ``z`` uses the mean
and standard deviation of VoG over the *training* examples of that class: the in-distribution
reference, so that normalising an OoD split does not erase its shift. ``split-z`` uses the
scored split's own examples of the class, as the official toy code does for the one split it
scores. ``abs-z`` and ``split-abs-z`` take |z|. The class of an example is its target class
at the last checkpoint it was observed at.

``window`` picks the checkpoints: ``all``, ``early`` (the first 3) or ``late`` (the last 3),
the paper's VoG(early) and VoG(late) whose rankings flip during training.

``label`` says whose class the gradient is taken for where labels are not trusted (test and
OoD splits in the predicted label mode): the class predicted at each checkpoint, or the one
the final model predicts, the same at every checkpoint. Labelled splits use their labels.

The running state depends on window, target and label only: a grid over ``norm`` keeps one.

The defaults (last 3 checkpoints, the softmax probability's gradient, the class predicted at
each checkpoint, no normalisation) are the variant with the highest mean AUROC on MNIST-C in
the VoG protocol study (``bench run --preset vog-protocol``; README): 82.4 ± 10.2 over the 15
corruptions against the paper's 85.42 ± 10.28, where the paper's logit target gives at best
69.4 (65.5 with the true label). The last 3 checkpoints are also what the paper calls
sufficient, and cost a third of all 10.
"""

from __future__ import annotations

import numpy as np
import torch

from bench.api import INPUT_GRAD, INPUT_GRAD_FINAL, INPUT_GRAD_PROB, INPUT_GRAD_PROB_FINAL, Batch, Checkpoint, DynamicsScorer
from bench.registry import register

NORMS = ("none", "z", "abs-z", "split-z", "split-abs-z")
WINDOWS = ("all", "early", "late")
WINDOW_SIZE = 3
TARGETS = ("logit", "prob")
LABELS = ("checkpoint", "final")
SIGNAL = {("logit", "checkpoint"): INPUT_GRAD, ("prob", "checkpoint"): INPUT_GRAD_PROB,
          ("logit", "final"): INPUT_GRAD_FINAL, ("prob", "final"): INPUT_GRAD_PROB_FINAL}


@register
class VoG(DynamicsScorer):
    name = "vog"
    family = "gradient"
    reference = "Agarwal, D'souza & Hooker, CVPR 2022 (arXiv 2008.11600); VoG row of Table 1"
    state_params = ("window", "target", "label")

    def __init__(self, window: str = "late", norm: str = "none", target: str = "prob", label: str = "checkpoint") -> None:
        for parameter, value, allowed in (("window", window, WINDOWS), ("norm", norm, NORMS), ("target", target, TARGETS),
                                          ("label", label, LABELS)):
            if value not in allowed:
                raise ValueError(f"vog: {parameter}={value!r} is not one of {', '.join(allowed)}")
        self.window = window
        self.norm = norm
        self.target = target
        self.label = label
        self._state: dict[str, dict] = {}

    @property
    def signal(self) -> str:
        return SIGNAL[self.target, self.label]

    @property
    def needs(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset({self.signal})

    def observes(self, checkpoint: Checkpoint) -> bool:
        if self.window == "early":
            return checkpoint.index < WINDOW_SIZE
        if self.window == "late":
            return checkpoint.index >= checkpoint.total - WINDOW_SIZE
        return True

    def start(self, split: str, size: int) -> None:
        self._state[split] = {"mean": None, "m2": None, "seen": set(), "cls": np.zeros(size, dtype=np.int64)}

    def update(self, batch: Batch, checkpoint: Checkpoint) -> None:
        state = self._state[batch.split]
        grad = getattr(batch, self.signal)
        if grad.ndim == 4:  # images: average the gradient over colour channels
            grad = grad.mean(dim=1)
        grad = grad.flatten(1).to(torch.float64)
        if state["mean"] is None:
            size = len(state["cls"])
            state["mean"] = torch.zeros(size, grad.shape[1], dtype=torch.float64, device=grad.device)
            state["m2"] = torch.zeros_like(state["mean"])
        state["seen"].add(checkpoint.index)
        count = len(state["seen"])  # checkpoints this example has been seen at, this one included
        mean, m2 = state["mean"][batch.index], state["m2"][batch.index]
        delta = grad - mean
        mean += delta / count
        m2 += delta * (grad - mean)
        state["mean"][batch.index], state["m2"][batch.index] = mean, m2
        classes = batch.target if self.label == "checkpoint" else batch.final_target
        state["cls"][batch.index.cpu().numpy()] = classes.cpu().numpy()

    def close(self, split: str) -> None:
        """Keep raw VoG alone: the per-pixel state is 16 bytes per pixel of every example."""
        state = self._state[split]
        state["raw"] = self._raw(split)
        state["mean"] = state["m2"] = None

    def _raw(self, split: str) -> np.ndarray:
        state = self._state[split]
        if "raw" in state:
            return state["raw"]
        return (state["m2"] / len(state["seen"])).sqrt().mean(dim=1).cpu().numpy()

    def scores(self, split: str) -> np.ndarray:
        raw = self._raw(split)
        if self.norm == "none":
            return raw
        cls = self._state[split]["cls"]
        reference, reference_cls = (raw, cls) if self.norm.startswith("split") else (self._raw("train"), self._state["train"]["cls"])
        z = np.full_like(raw, np.nan)
        for c in np.unique(cls):
            members = cls == c
            ref = reference[reference_cls == c]
            if len(ref) > 1 and ref.std() > 0:
                z[members] = (raw[members] - ref.mean()) / ref.std()
        return np.abs(z) if self.norm.endswith("abs-z") else z
