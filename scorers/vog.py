"""Variance of Gradients (Agarwal, D'souza & Hooker, CVPR 2022, arXiv 2008.11600).

At each checkpoint, S_t = gradient of the target class's softmax probability (the official
toy code; the default) or logit (the paper's text) w.r.t. the input, averaged over colour
channels. VoG is the mean over pixels of the per-pixel population standard deviation of S_t
over the checkpoints, as in the official code (chirag126/VOG): the square root is taken per
pixel, before the pixel mean (the harness's ``std`` reduction, Welford's update in float64).

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

The running state depends on window, target and label only: ``norm`` is applied by
``finish``, so a grid over it shares one pass and one state.

The defaults (last 3 checkpoints, the softmax probability's gradient, the class predicted at
each checkpoint, no normalisation) are the variant with the highest mean AUROC on MNIST-C in
the VoG protocol study (``bench run --preset vog-protocol``; README): 82.4 ± 10.2 over the 15
corruptions against the paper's 85.42 ± 10.28, where the paper's logit target gives at best
69.4 (65.5 with the true label). The last 3 checkpoints are also what the paper calls
sufficient, and cost a third of all 10.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from bench.api import Batch, Checkpoint, CheckpointScore, input_grad, register

WINDOW_SIZE = 3  # checkpoints in the early and late windows
WINDOWS = ("all", "early", "late")
NORMS = ("none", "z", "abs-z", "split-z", "split-abs-z")
TARGETS = ("logit", "prob")
LABELS = {"checkpoint": "target", "final": "final"}  # label source -> the class the gradient is taken for


@register
class VoG(CheckpointScore):
    name = "vog"
    family = "gradient"
    reference = "Agarwal, D'souza & Hooker, CVPR 2022 (arXiv 2008.11600); VoG row of Table 1"
    reduce = {"grad": "std", "cls": "last"}
    finish_params = ("norm",)

    def __init__(self, window: str = "late", norm: str = "none", target: str = "prob", label: str = "checkpoint") -> None:
        for parameter, value, allowed in (("window", window, WINDOWS), ("norm", norm, NORMS), ("target", target, TARGETS),
                                          ("label", label, LABELS)):
            if value not in allowed:
                raise ValueError(f"vog: {parameter}={value!r} is not one of {', '.join(allowed)}")
        self.window = window
        self.norm = norm
        self.target = target
        self.label = label

    @property
    def needs(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset({input_grad(of=self.target, cls=LABELS[self.label])})

    def observes(self, checkpoint: Checkpoint) -> bool:
        if self.window == "early":
            return checkpoint.index < WINDOW_SIZE
        if self.window == "late":
            return checkpoint.index >= checkpoint.total - WINDOW_SIZE
        return True

    def lacking(self, schedule: Sequence[Checkpoint], observed: frozenset[int]) -> str | None:
        if len(observed) >= 2:
            return None
        return (f"its {self.window} window holds {len(observed)} of these checkpoints, and a variance over "
                "checkpoints needs two or more")

    def value(self, batch: Batch) -> dict[str, torch.Tensor]:
        cls = LABELS[self.label]
        grad = batch[input_grad(of=self.target, cls=cls)]
        if grad.ndim == 4:  # images: average the gradient over colour channels
            grad = grad.mean(dim=1)
        return {"grad": grad, "cls": batch.classes[cls]}

    def finish(self, reduced: dict, split: str) -> np.ndarray:
        raw, cls = reduced[split]["grad"], reduced[split]["cls"]
        if self.norm == "none":
            return raw
        reference = reduced[split] if self.norm.startswith("split") else reduced["train"]
        z = np.full_like(raw, np.nan)
        for c in np.unique(cls):
            members = cls == c
            ref = reference["grad"][reference["cls"] == c]
            if len(ref) > 1 and ref.std() > 0:
                z[members] = (raw[members] - ref.mean()) / ref.std()
        return np.abs(z) if self.norm.endswith("abs-z") else z
