"""The scorer contract: what a difficulty or OoD score is, and how the harness drives it.

Every scorer gives one float per example per split, oriented so that **higher means
harder / more anomalous**, and is a class with a ``name``, a ``family``, a ``reference``,
the signals it ``needs``, and its parameters as keyword arguments of ``__init__`` with
defaults, stored under the same names (as in scikit-learn). Three forms, simplest first:

* ``CheckpointScore``, the common case: ``value(batch)``, the value an example takes at a
  checkpoint, and ``reduce``, how those values are reduced over the checkpoints it
  ``observes`` (see ``REDUCTIONS``). The harness keeps the running state of every split and
  does the index bookkeeping. An optional ``finish`` post-processes the reduced values (VoG's
  class normalisation); parameters that only ``finish`` reads are listed in
  ``finish_params``, so variants that differ in them share one pass and one state.
* ``Detector`` follows PyOD: ``fit`` on the in-distribution training features, then
  ``decision_function`` on any split. Each feature space (the pixels, the embedding, the
  logits) is extracted once, at the last checkpoint, for all detectors; a detector that reads
  the classifier's last layer (ViM, ReAct, ASH, DICE) sets ``uses_head`` and is fitted with
  ``head=Head(...)`` too.
* ``StreamingScorer``, for scores no reduction expresses (the checkpoint from which an
  example stays learned, a median over checkpoints): ``start``, ``update`` with every batch
  at every observed checkpoint, ``scores``. No built-in scorer needs it; plugins may
  (``examples/plugin-package`` is written in it), and it costs the harness one small host.

Each form is driven through one adapter of ``bench.hosts``. What a scorer ``observes`` is
asked once per checkpoint, in schedule order, before the first pass.

``register`` makes a class available under its name; built-in scorers and plugins are
found the same way (the entry-point group ``bench.scorers``, see ``bench.registry``).
"""

from __future__ import annotations

import functools
import inspect
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch

from bench.signals import (  # noqa: F401  (re-exported: what a scorer needs and reads; each described there)
    CLASSES,
    EMBEDDING,
    LOGITS,
    OUTPUTS,
    PARAM_GRAD_NORM,
    PIXELS,
    SIGNALS,
    Signal,
    input_grad,
    odin_logits,
)
from bench.schema import FAMILIES  # noqa: F401  (re-exported: the families a scorer names)
from bench.specs import format_spec

# Columns every split of a score table has; no scorer may take these names.
RESERVED_COLUMNS = ("id", "label", "pred", "noisy", "boundary_distance")

class Reduction(NamedTuple):
    """What a reduction computes over the checkpoints, and how two of its states merge: the state of a range of
    checkpoints followed by the state of the next range, for the same examples (``bench.reductions.merged``).
    Examples are independent in every reduction: the states of two ranges of examples are put end to end."""

    computes: str
    merge: str


REDUCTIONS = {
    "sum": Reduction("sum over the observed checkpoints", "the sums added"),
    "mean": Reduction("mean over the observed checkpoints", "the sums and the checkpoint counts added"),
    "std": Reduction("population std over the observed checkpoints of each element of the value, averaged over the "
                     "elements", "Chan et al.'s pairwise update of Welford's mean and sum of squared deviations"),
    "last": Reduction("the value at the last observed checkpoint, kept as it is (any shape)", "the later range's"),
    "transitions": Reduction("how many times a boolean value went from true to false (it starts false)",
                             "the counts added, plus one where the earlier range ends true and the later begins false"),
    "any": Reduction("whether a boolean value was ever true", "or"),
    "count": Reduction("the number of observed checkpoints (reads no value)", "the counts added"),
}


@dataclass(frozen=True)
class Checkpoint:
    """A point of the checkpoint schedule: the model after ``epoch`` epochs of training."""

    index: int  # position in the schedule, 0-based
    epoch: int | float | None  # epochs of training done: a fraction in mid-epoch (``checkpoint_unit = "step"``); None for
    # a lone final model whose training is unknown (``bench score`` of one file)
    total: int  # number of checkpoints in the schedule
    lr: float | None = None  # the learning rate of the steps just before it (at initialisation, the first step's)

    @property
    def is_last(self) -> bool:
        return self.index == self.total - 1


@dataclass
class Batch:
    """One batch of one split at one checkpoint: the signals asked for, and the classes they refer to."""

    split: str
    index: torch.Tensor  # (n,) positions of the examples in their split
    classes: dict[str, torch.Tensor]  # "target", "label", and "final" when a signal asks for it (see CLASSES)
    signals: dict[Signal, torch.Tensor] = field(default_factory=dict)
    head: torch.nn.Linear | None = None  # the model's last layer at this checkpoint, for detectors that read it
    checkpoint: Checkpoint | None = None  # the checkpoint the batch is probed at (its learning rate, for TracIn)

    def __getitem__(self, signal: str) -> torch.Tensor:
        return self.signals[signal]

    @property
    def target(self) -> torch.Tensor:
        return self.classes["target"]


@dataclass(frozen=True)
class Head:
    """The classifier's last linear layer at the last checkpoint, in float64: ``logits = X @ weight.T + bias``."""

    weight: np.ndarray  # (classes, d)
    bias: np.ndarray  # (classes,)

    def logits(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float64) @ self.weight.T + self.bias


def validation_rows(n: int, size: int, seed: int = 0) -> np.ndarray:
    """The sorted positions of ``size`` training rows (all when ``size`` >= ``n``), drawn with ``seed``: the
    in-distribution data a detector fits what must not come from the test or an OoD split (ReAct's percentile,
    a temperature). They are rows the network trained on; a detector names its ``val_size`` in its spec."""
    if size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


class Scorer(ABC):
    """Metadata and parameters shared by every form of scorer."""

    name: ClassVar[str]  # short kebab-case registry name, e.g. "vog"
    family: ClassVar[str]  # one of FAMILIES, e.g. "gradient" (a Detector's follows its feature space)
    reference: ClassVar[str]  # the paper (and table row) the scorer stands for
    needs: frozenset[str] = frozenset()  # signals from SIGNALS (or their names); may be a property

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Constructor parameters and their default values."""
        return dict(_defaults(cls))

    @property
    def params(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in _defaults(type(self))}

    @property
    def spec(self) -> str:
        """The name shown in results: ``name`` plus its non-default parameters, e.g. ``vog[norm=z]``."""
        defaults = _defaults(type(self))
        return format_spec(self.name, {k: v for k, v in self.params.items() if v != defaults[k]})

    @property
    def full_spec(self) -> str:
        """``name`` plus every parameter, defaults included: the same scorer whatever the defaults of the day."""
        return format_spec(self.name, self.params)

    def observes(self, checkpoint: Checkpoint) -> bool:
        """Whether this checkpoint matters to the scorer; the probe skips passes nobody needs.

        Asked once per checkpoint of the schedule, in order, before the first pass (so it may keep state)."""
        return True

    def lacking(self, schedule: Sequence[Checkpoint], observed: frozenset[int]) -> str | None:
        """What the checkpoints lack that this scorer reads, or None. A scorer that lacks something (checkpoints
        a user trained, ``bench score``, may hold one model, no initialisation, no learning rates) is skipped with
        this reason in the leaderboard, never computed on other checkpoints. Asked once, after ``observes``;
        ``observed``: the indices of the checkpoints it observes. By default it lacks only a checkpoint to read;
        a score over training says so with ``over_training``."""
        return None if observed else "it reads none of these checkpoints"


def over_training(observed: frozenset[int]) -> str | None:
    """The reason to skip a score over training that observes fewer than two checkpoints, or None."""
    if len(observed) >= 2:
        return None
    return f"a score over training needs two checkpoints or more, and it has {len(observed)}"


@functools.cache
def _defaults(cls: type) -> MappingProxyType:
    """Read once per class: ``spec`` is asked for per scorer per batch."""
    signature = inspect.signature(cls.__init__)
    return MappingProxyType({p.name: p.default for p in signature.parameters.values()
                             if p.name != "self" and p.default is not inspect.Parameter.empty})


class CheckpointScore(Scorer):
    """A score built from one value per example at each observed checkpoint, reduced over them.

    ``reduce`` names a reduction of ``REDUCTIONS``; or, for several states, maps state names to
    reductions, and ``value`` then returns a dict of tensors by state name (``count`` states
    need none). The reduced values of every split are handed to ``finish``.
    """

    reduce: ClassVar[str | dict[str, str]]
    finish_params: ClassVar[tuple[str, ...]] = ()  # parameters only ``finish`` reads

    @abstractmethod
    def value(self, batch: Batch) -> torch.Tensor | dict[str, torch.Tensor]:
        """(n, ...) values of the batch's examples at this checkpoint (a dict by state when ``reduce`` is one)."""

    def finish(self, reduced: dict[str, Any], split: str) -> np.ndarray:
        """The scores of ``split`` from the reduced values of every split (split -> array, or dict by state)."""
        return reduced[split]


SPACE_FAMILIES = {PIXELS: "pixel-space", EMBEDDING: "feature-based", LOGITS: "output-based"}


class Detector(Scorer):
    """An outlier detector on a feature space, with PyOD's contract.

    ``features`` picks the space: ``pixels`` (the raw input), ``embedding`` (the trained
    model's penultimate layer at the last checkpoint) or ``logits``, among the class's
    ``feature_spaces``. ``fit`` gets the training split's labels (noisy ones where the run
    makes them noisy), and ``head=`` the last layer when ``uses_head`` is set.
    """

    feature_spaces: ClassVar[tuple[str, ...]] = (PIXELS, EMBEDDING)
    uses_head: ClassVar[bool] = False

    def __init__(self, features: str = PIXELS) -> None:
        if features not in self.feature_spaces:
            raise ValueError(
                f"{self.name}: features={features!r} is not a feature space; "
                f"use one of {', '.join(self.feature_spaces)}"
            )
        self.features = str(features)  # the plain name: a scorer parameter, pickled and written as text

    @property
    def needs(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset({self.features})

    @property
    def family(self) -> str:  # type: ignore[override]
        return SPACE_FAMILIES[self.features]

    def observes(self, checkpoint: Checkpoint) -> bool:
        return checkpoint.is_last

    @abstractmethod
    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "Detector":
        """Fit on in-distribution training features (n, d); labels for class-conditional detectors
        (and the keyword ``head``, a ``Head``, when ``uses_head`` is set)."""

    @abstractmethod
    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Outlier score per row of X, higher = more anomalous."""


class StreamingScorer(Scorer):
    """The general form: the scorer keeps its own running state, fed batch by batch."""

    @abstractmethod
    def start(self, split: str, size: int) -> None:
        """Allocate the running state for a split of ``size`` examples."""

    @abstractmethod
    def update(self, batch: Batch, checkpoint: Checkpoint) -> None:
        """Fold one batch (its examples are ``batch.index`` of the split) into the running state."""

    @abstractmethod
    def scores(self, split: str) -> np.ndarray:
        """One score per example of the split, higher = harder / more anomalous."""


def at_least(scorer: str, parameter: str, value: float | None, low: float, none_means: str = "") -> None:
    """For a scorer's ``__init__``: a ValueError naming ``parameter`` if ``value`` is below ``low``. None passes (the
    parameter unset); ``none_means`` says what it does, for the message."""
    if value is not None and value < low:
        unset = f", or none for {none_means}" if none_means else ""
        raise ValueError(f"{scorer}: {parameter}={value} is below {low}; give {low} or more{unset}")


def positive(scorer: str, parameter: str, value: float, example: float) -> None:
    """For a scorer's ``__init__``: a ValueError naming ``parameter`` unless ``value`` is above 0."""
    if not value > 0:
        raise ValueError(f"{scorer}: {parameter}={value} is not positive; give a number above 0, e.g. {example}")


SCORER_FORMS = (CheckpointScore, Detector, StreamingScorer)
registered: dict[str, type[Scorer]] = {}  # name -> class, filled by ``register``


def register(cls: type[Scorer]) -> type[Scorer]:
    """Class decorator that makes a scorer available under ``cls.name``."""
    if not (inspect.isclass(cls) and issubclass(cls, SCORER_FORMS)):
        raise TypeError(f"{cls!r} is not a CheckpointScore, Detector or StreamingScorer subclass")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__qualname__} has no `name`; set a short kebab-case name")
    if name in RESERVED_COLUMNS:
        raise ValueError(f"scorer name {name!r} is reserved for a score-table column; pick another")
    for attribute in ("reference",) if issubclass(cls, Detector) else ("family", "reference"):
        if not isinstance(getattr(cls, attribute, None), str):
            raise TypeError(f"scorer {name!r} must set the class attribute `{attribute}`")
    if issubclass(cls, CheckpointScore):
        for reduction in ([cls.reduce] if isinstance(cls.reduce, str) else cls.reduce.values()):
            if reduction not in REDUCTIONS:
                raise ValueError(f"scorer {name!r} reduces with {reduction!r}; known reductions: {', '.join(REDUCTIONS)}")
    origin = f"{cls.__module__}.{cls.__qualname__}"
    taken = registered.get(name)
    if taken is not None and f"{taken.__module__}.{taken.__qualname__}" != origin:
        raise ValueError(f"scorer name {name!r} is taken by {taken.__module__}.{taken.__qualname__}; "
                         f"{origin} must pick another")
    try:
        needs = cls.needs if isinstance(cls.needs, frozenset) else cls().needs
    except Exception as error:
        raise TypeError(f"scorer {name!r} could not be built with its default parameters to read what it needs "
                        f"({type(error).__name__}: {error}); every parameter needs a default, and a Detector's "
                        "__init__ must call super().__init__(features)") from None
    for signal in needs:
        try:
            Signal(signal)
        except ValueError as error:
            raise ValueError(f"scorer {name!r} needs an unknown signal: {error}") from None
    registered[name] = cls
    return cls
