"""A local scorer plugin: `bench run --plugin examples/max_logit.py --scorers max-logit`."""

import numpy as np

from bench import LOGITS, DynamicsScorer, register


@register
class MaxLogit(DynamicsScorer):
    """Negated largest logit of the final model (Hendrycks et al., ICML 2022): low logits look OoD."""

    name = "max-logit"
    family = "confidence"
    reference = "Hendrycks et al., ICML 2022 (arXiv 1911.11132)"
    needs = frozenset({LOGITS})

    def __init__(self):
        self._scores = {}

    def observes(self, checkpoint):
        return checkpoint.is_last

    def start(self, split, size):
        self._scores[split] = np.zeros(size)

    def update(self, batch, checkpoint):
        self._scores[batch.split][batch.index.cpu().numpy()] = -batch.logits.max(dim=1).values.double().cpu().numpy()

    def scores(self, split):
        return self._scores[split]
