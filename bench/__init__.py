"""difficulty-bench: a benchmark harness for example-difficulty and out-of-distribution scores."""

__version__ = "0.2.0"

from bench.api import (  # noqa: E402  (the public API of a scorer plugin)
    EMBEDDING,
    INPUT_GRAD,
    INPUT_GRAD_FINAL,
    INPUT_GRAD_PROB,
    INPUT_GRAD_PROB_FINAL,
    LOGITS,
    PARAM_GRAD_NORM,
    PIXELS,
    Batch,
    Checkpoint,
    Detector,
    DynamicsScorer,
    Scorer,
    SummedScorer,
)
from bench.registry import register  # noqa: E402

__all__ = [
    "EMBEDDING", "INPUT_GRAD", "INPUT_GRAD_FINAL", "INPUT_GRAD_PROB", "INPUT_GRAD_PROB_FINAL", "LOGITS",
    "PARAM_GRAD_NORM", "PIXELS",
    "Batch", "Checkpoint", "Detector", "DynamicsScorer", "Scorer", "SummedScorer", "register",
]
