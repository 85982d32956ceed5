"""A local scorer plugin: `bench run --plugin examples/max_logit.py --scorers max-logit`."""

from bench import LOGITS, SummedScorer, register


@register
class MaxLogit(SummedScorer):
    """Negated largest logit of the final model (Hendrycks et al., ICML 2022): low logits look OoD."""

    name = "max-logit"
    family = "confidence"
    reference = "Hendrycks et al., ICML 2022 (arXiv 1911.11132)"
    needs = frozenset({LOGITS})

    def observes(self, checkpoint):
        return checkpoint.is_last  # the final model only

    def term(self, batch):
        return -batch.logits.max(dim=1).values  # higher = more anomalous
