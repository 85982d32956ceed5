"""The energy score (Liu et al., NeurIPS 2020) as a difficulty-bench plugin, found through an entry point."""

import numpy as np

from bench.api import LOGITS, StreamingScorer


class Energy(StreamingScorer):
    """Free energy -T logsumexp(z / T) of the final model's logits: higher for OoD inputs.

    Written against the general streaming form (start / update / scores) to show it; as a
    ``CheckpointScore`` with ``reduce = "last"`` it would be three lines shorter.
    """

    name = "energy"
    family = "confidence"
    reference = "Liu, Wang, Owens & Li, NeurIPS 2020 (arXiv 2010.03788)"
    needs = frozenset({LOGITS})

    def __init__(self, temperature: float = 1.0):
        self.temperature = temperature
        self._scores = {}

    def observes(self, checkpoint):
        return checkpoint.is_last

    def start(self, split, size):
        self._scores[split] = np.zeros(size)

    def update(self, batch, checkpoint):
        energy = -self.temperature * (batch[LOGITS] / self.temperature).logsumexp(dim=1)
        self._scores[batch.split][batch.index.cpu().numpy()] = energy.double().cpu().numpy()

    def scores(self, split):
        return self._scores[split]
