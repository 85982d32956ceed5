"""The Scorer contract: what a difficulty or OoD score is, and how the harness drives it.

Every scorer returns one float per example per split, oriented so that **higher means
harder / more anomalous**. Two kinds share the contract:

* ``DynamicsScorer`` watches training: at each checkpoint of the schedule the probe makes
  one pass over every scored split and hands each batch's signals to ``update``. The scorer
  keeps a small running state (never a per-checkpoint history) and answers ``scores``.
* ``Detector`` follows PyOD: ``fit`` on the in-distribution training features, then
  ``decision_function`` on any split. The probe extracts each feature space once, at the
  last checkpoint, and shares it between all detectors.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

# Signals the probe can compute for a batch. A scorer declares the ones it needs in ``needs``;
# the probe computes only the union of what the active scorers need.
LOGITS = "logits"  # (n, classes) pre-softmax outputs
EMBEDDING = "embedding"  # (n, d) penultimate activations, the input of the last linear layer
INPUT_GRAD = "input_grad"  # (n, *input_shape) gradient of the target logit w.r.t. the input
INPUT_GRAD_PROB = "input_grad_prob"  # (n, *input_shape) gradient of the target's softmax probability w.r.t. the input
INPUT_GRAD_FINAL = "input_grad_final"  # as INPUT_GRAD, for the final target (see Batch)
INPUT_GRAD_PROB_FINAL = "input_grad_prob_final"  # as INPUT_GRAD_PROB, for the final target
PIXELS = "pixels"  # (n, *input_shape) the input itself, scaled to [0, 1]
PARAM_GRAD_NORM = "param_grad_norm"  # (n,) L2 norm of the cross-entropy's gradient over all parameters
SIGNALS = (LOGITS, EMBEDDING, INPUT_GRAD, INPUT_GRAD_PROB, INPUT_GRAD_FINAL, INPUT_GRAD_PROB_FINAL, PIXELS, PARAM_GRAD_NORM)
# The signals that refer to the final target rather than to this checkpoint's.
FINAL_TARGET_SIGNALS = frozenset({INPUT_GRAD_FINAL, INPUT_GRAD_PROB_FINAL})

# Columns every split of a score table has; no scorer may take these names.
RESERVED_COLUMNS = ("id", "label", "pred", "noisy")


@dataclass(frozen=True)
class Checkpoint:
    """A point of the checkpoint schedule: the model after ``epoch`` epochs of training."""

    index: int  # position in the schedule, 0-based
    epoch: int
    total: int  # number of checkpoints in the schedule

    @property
    def is_last(self) -> bool:
        return self.index == self.total - 1


@dataclass
class Batch:
    """One batch of one split at one checkpoint; signals not asked for are None.

    ``target`` is the class every label-dependent signal refers to: the split's label when
    labels are trusted (the training split, or any split in the oracle label mode), otherwise
    the class the model predicts at this checkpoint. ``final_target`` is the same with the
    final model's prediction instead (the last checkpoint's), the same at every checkpoint;
    it is given only when a scorer needs a signal of ``FINAL_TARGET_SIGNALS``.
    """

    split: str
    index: torch.Tensor  # (n,) positions of the examples in their split
    label: torch.Tensor  # (n,) the split's own labels (training labels may be noisy)
    target: torch.Tensor  # (n,) see above
    final_target: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    embedding: torch.Tensor | None = None
    input_grad: torch.Tensor | None = None
    input_grad_prob: torch.Tensor | None = None
    input_grad_final: torch.Tensor | None = None
    input_grad_prob_final: torch.Tensor | None = None
    pixels: torch.Tensor | None = None
    param_grad_norm: torch.Tensor | None = None


def spec_value(value: Any) -> str:
    """A parameter value as a spec writes it, so that the spec parses back to the same value."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


class Scorer(ABC):
    """Metadata and parameters shared by both kinds of scorer.

    Subclasses set the class attributes below and take their parameters as keyword
    arguments of ``__init__`` with defaults, stored under the same names (as in
    scikit-learn), so that ``params`` and ``spec`` can be derived.
    """

    name: ClassVar[str]  # short kebab-case registry name, e.g. "vog"
    family: ClassVar[str]  # e.g. "gradient", "training dynamics", "confidence", "detector"
    reference: ClassVar[str]  # the paper (and table row) the scorer stands for
    needs: frozenset[str] = frozenset()  # signals from SIGNALS; may be a property

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Constructor parameters and their default values."""
        signature = inspect.signature(cls.__init__)
        return {
            p.name: p.default
            for p in signature.parameters.values()
            if p.name != "self" and p.default is not inspect.Parameter.empty
        }

    @property
    def params(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.defaults()}

    @property
    def spec(self) -> str:
        """The name shown in results: ``name`` plus its non-default parameters, e.g. ``vog[norm=z]``."""
        changed = [f"{k}={spec_value(v)}" for k, v in self.params.items() if v != self.defaults()[k]]
        return f"{self.name}[{','.join(changed)}]" if changed else self.name

    @property
    def full_spec(self) -> str:
        """``name`` plus every parameter, defaults included: the same scorer whatever the defaults of the day."""
        return f"{self.name}[{','.join(f'{k}={spec_value(v)}' for k, v in self.params.items())}]" if self.params else self.name


class DynamicsScorer(Scorer):
    """A scorer that observes the model at checkpoints during training.

    ``state_params`` names the parameters the running state depends on, when not all do
    (VoG's normalisation is applied to the finished state): the probe then updates one state
    for all scorers of the class that agree on those parameters, so a grid of variants costs
    the memory and time of the distinct states only.
    """

    state_params: ClassVar[tuple[str, ...] | None] = None  # None: every parameter

    @property
    def state_key(self) -> tuple | None:
        """Scorers with the same key, not None, can share one running state."""
        if self.state_params is None:
            return None
        return type(self), tuple(self.params[name] for name in self.state_params)

    def share_state(self, other: "DynamicsScorer") -> None:
        """Take the running state of ``other``, a scorer with the same ``state_key``: every attribute but the parameters."""
        for attribute, value in vars(other).items():
            if attribute not in self.defaults():
                setattr(self, attribute, value)

    def observes(self, checkpoint: Checkpoint) -> bool:
        """Whether this checkpoint matters to the scorer; the probe skips passes nobody needs."""
        return True

    @abstractmethod
    def start(self, split: str, size: int) -> None:
        """Allocate the running state for a split of ``size`` examples."""

    @abstractmethod
    def update(self, batch: Batch, checkpoint: Checkpoint) -> None:
        """Fold one batch of signals at one checkpoint into the running state."""

    @abstractmethod
    def scores(self, split: str) -> np.ndarray:
        """One score per example of the split, higher = harder / more anomalous."""

    def close(self, split: str) -> None:
        """The split has been observed at every checkpoint: free what ``scores`` will not need (optional)."""


class SummedScorer(DynamicsScorer):
    """A score that adds up one value per example at each checkpoint it observes.

    Subclasses give ``term(batch)``; with ``average = True`` the score is the mean over the
    observed checkpoints instead of the sum. With ``observes`` true only at the last
    checkpoint the score is a function of the final model.
    """

    average: ClassVar[bool] = False

    def __init__(self) -> None:
        self._sums: dict[str, np.ndarray] = {}
        self._seen: dict[str, set[int]] = {}  # checkpoint indices observed, per split

    @abstractmethod
    def term(self, batch: Batch) -> torch.Tensor:
        """(n,) values for the batch's examples at this checkpoint."""

    def start(self, split: str, size: int) -> None:
        self._sums[split] = np.zeros(size, dtype=np.float64)
        self._seen[split] = set()

    def update(self, batch: Batch, checkpoint: Checkpoint) -> None:
        self._sums[batch.split][batch.index.cpu().numpy()] += self.term(batch).double().cpu().numpy()
        self._seen[batch.split].add(checkpoint.index)

    def scores(self, split: str) -> np.ndarray:
        if not self._seen[split]:
            raise ValueError(f"{self.spec} observed no checkpoint; check its parameters against the checkpoint schedule")
        return self._sums[split] / len(self._seen[split]) if self.average else self._sums[split].copy()


class Detector(Scorer):
    """An outlier detector on a feature space, with PyOD's contract.

    ``features`` picks the space: ``pixels`` (the raw input) or ``embedding`` (the trained
    model's penultimate layer at the last checkpoint).
    """

    family = "detector"
    feature_spaces: ClassVar[tuple[str, ...]] = (PIXELS, EMBEDDING)

    def __init__(self, features: str = PIXELS) -> None:
        if features not in self.feature_spaces:
            raise ValueError(
                f"{self.name}: features={features!r} is not a feature space; "
                f"use one of {', '.join(self.feature_spaces)}"
            )
        self.features = features

    @property
    def needs(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset({self.features})

    @abstractmethod
    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "Detector":
        """Fit on in-distribution training features (n, d); labels for class-conditional detectors."""

    @abstractmethod
    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Outlier score per row of X, higher = more anomalous."""
