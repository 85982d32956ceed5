"""cleanlab's label-quality scores of the final model's softmax: the examples whose label the model doubts.

Each is ``1 - cleanlab.rank.get_label_quality_scores(target, probs, method=...)`` (cleanlab 2.9.0 called
itself), so higher = more likely mislabeled, ranked as cleanlab ranks. The class scored is ``batch.target``:
the training split's label (the noisy one where the run makes labels noisy: the labels under suspicion), the
predicted class on splits whose labels are not trusted. cleanlab asks for out-of-sample probabilities;
``probs`` says where they come from, and every spec names it, so that no leaderboard row passes the in-sample
variant off as cleanlab's:

* ``in-sample`` (the default: it needs no extra training): the final model's probabilities, on the training
  split for examples it was trained on, whose labels (wrong ones too) it has fitted, which hides label errors;
* ``cross-fit``: those of a model that never trained on the example, the ``heldout_logits`` signal of a unit
  run with ``--cross-fit K`` (K more trainings, each model scoring the fold it left out).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional

from bench.api import LOGITS, Batch, CheckpointScore, register
from bench.signals import HELDOUT_LOGITS
from scorers.dynamics import FinalModel

PROBS = {"in-sample": LOGITS, "cross-fit": HELDOUT_LOGITS}  # where the probabilities come from -> the signal read


class _LabelQuality(FinalModel, CheckpointScore):
    """One of cleanlab's label-quality ``method``s on the final model's float64 softmax."""

    family = "output-based"
    reduce = {"probs": "last", "target": "last"}
    method: str  # cleanlab's name of the score

    def __init__(self, probs: str = "in-sample") -> None:
        if probs not in PROBS:
            raise ValueError(f"{self.name}: probs={probs!r} is not one of {', '.join(PROBS)}; in-sample is the final "
                             "model's probabilities, cross-fit those of a unit trained with cross-fitting")
        self.probs = probs

    @property
    def needs(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset({PROBS[self.probs]})

    @property
    def spec(self) -> str:  # type: ignore[override]
        """Every parameter, ``probs`` at its default too: in-sample and cross-fit scores are told apart in results."""
        return self.full_spec

    def value(self, batch: Batch) -> dict[str, torch.Tensor]:
        return {"probs": functional.softmax(batch[PROBS[self.probs]].double(), dim=1), "target": batch.target}

    def finish(self, reduced: dict, split: str) -> np.ndarray:
        from cleanlab.rank import get_label_quality_scores

        probs, target = reduced[split]["probs"], reduced[split]["target"]
        if probs.shape[1] < 2:
            raise ValueError(f"{self.name}: the model gives {probs.shape[1]} class; label quality needs 2 or more")
        return 1 - get_label_quality_scores(target, probs, method=self.method)


@register
class SelfConfidence(_LabelQuality):
    """1 - the probability of the scored class: low confidence in its label ranks first."""

    name = "self-confidence"
    method = "self_confidence"
    reference = ("Northcutt, Jiang & Chuang, JAIR 2021 (arXiv 1911.00068); cleanlab 2.9.0 "
                 "rank.get_label_quality_scores(method='self_confidence')")


@register
class NormalizedMargin(_LabelQuality):
    """1 - (the scored class's probability minus the largest other, plus 1) / 2: another class preferred ranks first."""

    name = "normalized-margin"
    method = "normalized_margin"
    reference = ("Northcutt, Jiang & Chuang, JAIR 2021 (arXiv 1911.00068); cleanlab 2.9.0 "
                 "rank.get_label_quality_scores(method='normalized_margin')")


@register
class ConfidenceWeightedEntropy(_LabelQuality):
    """1 - log(1 + x) / x with x = normalised entropy / the scored class's probability: unsure and not of the label."""

    name = "confidence-weighted-entropy"
    method = "confidence_weighted_entropy"
    reference = ("Kuan & Mueller, ICML 2022 DataPerf workshop (label-quality scores); cleanlab 2.9.0 "
                 "rank.get_label_quality_scores(method='confidence_weighted_entropy')")
