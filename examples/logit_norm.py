"""A local scorer plugin: `bench run --plugin examples/logit_norm.py --scorers logit-norm`."""

from bench.api import LOGITS, CheckpointScore, register


@register
class LogitNorm(CheckpointScore):
    """Negated L2 norm of the final model's logits (Wei et al., ICML 2022): small logits look OoD."""

    name = "logit-norm"
    family = "output-based"
    reference = "Wei et al., ICML 2022 (arXiv 2205.09310), Sec. 3: the logits' norm grows on training data"
    needs = frozenset({LOGITS})
    reduce = "last"  # the value at the last checkpoint it observes

    def observes(self, checkpoint):
        return checkpoint.is_last  # the final model only

    def value(self, batch):
        return -batch[LOGITS].norm(dim=1)  # higher = more anomalous
