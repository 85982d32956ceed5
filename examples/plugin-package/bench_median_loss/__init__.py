"""The median loss over training as a difficulty-bench plugin, found through an entry point."""

import numpy as np
from torch.nn import functional

from bench.api import LOGITS, StreamingScorer


class MedianLoss(StreamingScorer):
    """The median over the checkpoints of an example's cross-entropy: the loss over training, robust to one epoch.

    No reduction of the harness is a median (it needs every checkpoint's value, not a running
    state), so it is written in the general streaming form: start / update / scores.
    """

    name = "median-loss"
    family = "training dynamics"
    reference = "the median instead of the mean of `avgloss`, Kwok et al. 2024 (arXiv 2401.01867)"
    needs = frozenset({LOGITS})

    def __init__(self):
        self._sizes = {}
        self._losses = {}  # split -> checkpoint index -> (size,) losses

    def start(self, split, size):
        self._sizes[split] = size
        self._losses[split] = {}

    def update(self, batch, checkpoint):
        losses = self._losses[batch.split].setdefault(checkpoint.index, np.zeros(self._sizes[batch.split]))
        loss = functional.cross_entropy(batch[LOGITS], batch.target, reduction="none")
        losses[batch.index.cpu().numpy()] = loss.double().cpu().numpy()

    def scores(self, split):
        return np.median(np.stack(list(self._losses[split].values())), axis=0)
