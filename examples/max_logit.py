"""A local scorer plugin: `bench run --plugin examples/max_logit.py --scorers max-logit`."""

from bench.api import LOGITS, CheckpointScore, register


@register
class MaxLogit(CheckpointScore):
    """Negated largest logit of the final model (Hendrycks et al., ICML 2022): low logits look OoD."""

    name = "max-logit"
    family = "confidence"
    reference = "Hendrycks et al., ICML 2022 (arXiv 1911.11132)"
    needs = frozenset({LOGITS})
    reduce = "last"  # the value at the last checkpoint it observes

    def observes(self, checkpoint):
        return checkpoint.is_last  # the final model only

    def value(self, batch):
        return -batch[LOGITS].max(dim=1).values  # higher = more anomalous
