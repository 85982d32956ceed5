"""The energy score (Liu et al., NeurIPS 2020) as a difficulty-bench plugin, found through an entry point."""

import numpy as np

from bench import LOGITS, DynamicsScorer


class Energy(DynamicsScorer):
    """Free energy -T logsumexp(z / T) of the final model's logits: higher for OoD inputs.

    Written against the full streaming contract (start / update / scores) to show it.
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
        energy = -self.temperature * (batch.logits / self.temperature).logsumexp(dim=1)
        self._scores[batch.split][batch.index.cpu().numpy()] = energy.double().cpu().numpy()

    def scores(self, split):
        return self._scores[split]
