"""Hosts: each scorer form behind one adapter with the same calls, so the probe drives every form alike.

A host serves the scorers that share one running state, and is called in this order:

* ``start(split, size)`` before a split's passes;
* ``update(batch, checkpoint)`` with every batch at each checkpoint in ``observed``;
* ``end(split)`` when the split has been seen at every checkpoint (its running state is folded); in a shard of
  the probe, ``partial(split)`` instead, which hands back the shard's part of what ``end`` keeps, and where the
  shards meet, ``join(split, parts)`` in place of ``end``: the parts, in order of their examples, put end to end;
  in a shard of a range of checkpoints, ``ranged(split)``, the running state itself, which ``settle(split,
  parts)`` merges over consecutive ranges into what ``partial`` would have handed back;
* ``scores(scorer, split)`` for each of its scorers and split, once every split has ended;
* ``state_bytes()`` at the end of each split's passes and after scoring, for the peak size of its state.

The forms: ``CheckpointHost``, the ``CheckpointScore`` variants that differ only in their
``finish_params`` (one pass, one state, see ``bench.reductions``); ``DetectorHost``, every
``Detector`` on one feature space (the space is kept once, at the last checkpoint, and each
detector is fitted on the training split's when first scored, with the model's last layer if
it reads it); ``StreamingHost``, one
``StreamingScorer``, which keeps its own state. ``make_hosts`` is the one place the form of a
scorer is looked at.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import torch

from bench.api import Batch, Checkpoint, CheckpointScore, Detector, Head, Scorer, StreamingScorer
from bench.meter import pickled_bytes, tensor_bytes
from bench.reductions import Accumulator, merged
from bench.signals import Signal


def needs_of(scorer: Scorer) -> frozenset[Signal]:
    """The signals ``scorer`` needs, as ``Signal`` values (a plugin may declare them as plain text)."""
    return frozenset(map(Signal, scorer.needs))


def observed_checkpoints(scorer: Scorer, schedule: Sequence[Checkpoint]) -> frozenset[int]:
    """The indices of the checkpoints ``scorer`` reads: its ``observes`` asked once per checkpoint, in schedule
    order (an ``observes`` may keep state, as one that picks the first checkpoint after an epoch does)."""
    return frozenset(checkpoint.index for checkpoint in schedule if scorer.observes(checkpoint))


class Host(ABC):
    """The scorers sharing one running state, and the checkpoints (indices) they observe."""

    mergeable = False  # whether ``partial`` and ``join`` are defined: the host can serve a sharded probe

    def __init__(self, scorers: list[Scorer], observed: frozenset[int]) -> None:
        self.scorers = scorers
        self.specs = [scorer.spec for scorer in scorers]
        self.observed = observed
        self.scorer_needs = {scorer.spec: needs_of(scorer) for scorer in scorers}
        self.needs = frozenset().union(*self.scorer_needs.values())

    def start(self, split: str, size: int) -> None:
        """A split of ``size`` examples begins."""

    @abstractmethod
    def update(self, batch: Batch, checkpoint: Checkpoint) -> None:
        """Fold one batch of the split at an observed checkpoint into the running state."""

    def end(self, split: str) -> None:
        """The split has been seen at every checkpoint: what ``partial`` hands back, joined alone."""
        self.join(split, [self.partial(split)])

    def partial(self, split: str) -> Any:
        """In place of ``end`` in a shard of the probe: what ``end`` keeps of the shard's part of ``split``."""
        raise NotImplementedError

    def join(self, split: str, parts: list[Any]) -> None:
        """In place of ``end`` where the shards meet: ``split`` made of the ``partial``s of consecutive ranges of its
        examples, in order."""
        raise NotImplementedError

    def ranged(self, split: str) -> dict[str, np.ndarray]:
        """In place of ``end`` in a shard of a range of checkpoints: the running state, for ``settle``."""
        raise NotImplementedError

    def settle(self, split: str, parts: list[dict[str, np.ndarray]]) -> Any:
        """What ``partial`` hands back over every checkpoint, from the ``ranged`` states of consecutive ranges of
        them, in order, for the same examples."""
        raise NotImplementedError

    @abstractmethod
    def scores(self, scorer: Scorer, split: str) -> Any:
        """``scorer``'s scores of ``split`` (one float per example, checked by the probe), every split having ended."""

    @abstractmethod
    def state_bytes(self) -> dict[str, float]:
        """The size of each scorer's state now, by spec (a state shared by variants counts in full for each)."""


class CheckpointHost(Host):
    """``CheckpointScore`` variants differing only in their ``finish_params``: one ``Accumulator`` per state and split."""

    mergeable = True

    def __init__(self, scorers: list[CheckpointScore], observed: frozenset[int], dtype: torch.dtype) -> None:
        super().__init__(scorers, observed)
        self.first = scorers[0]
        self.dtype = dtype  # of sums and moments
        self.accumulators: dict[str, Accumulator] = {}  # state name -> accumulator, for the split being probed
        self.reduced: dict[str, Any] = {}  # split -> reduced values (an array, or a dict by state)

    @staticmethod
    def key(scorer: CheckpointScore) -> tuple:
        """What variants sharing a state have in common: the class and every parameter ``finish`` alone does not read."""
        return type(scorer), tuple((k, v) for k, v in scorer.params.items() if k not in scorer.finish_params)

    def start(self, split: str, size: int) -> None:
        reduce = self.first.reduce
        states = {"": reduce} if isinstance(reduce, str) else reduce  # "": the one state of a single reduction
        self.accumulators = {name: Accumulator(reduction, size, self.dtype) for name, reduction in states.items()}

    def update(self, batch: Batch, checkpoint: Checkpoint) -> None:
        values = self.first.value(batch)
        single = "" in self.accumulators
        if single != isinstance(values, torch.Tensor):
            raise TypeError(f"value() returned a {type(values).__name__}; with reduce = {self.first.reduce!r} it must "
                            f"return {'a tensor' if single else 'a dict of tensors by state name'}")
        for name, accumulator in self.accumulators.items():
            value = None if accumulator.reduction == "count" else values if single else values[name]
            if value is not None and (value.ndim == 0 or len(value) != len(batch.index)):
                raise ValueError(f"value() returned shape {tuple(value.shape)} for a batch of {len(batch.index)} "
                                 "examples; it must return one value (or row) per example")
            accumulator.update(batch.index, value, checkpoint.index)

    def partial(self, split: str) -> dict[str, np.ndarray]:
        results = {name: accumulator.result() for name, accumulator in self.accumulators.items()}
        self.accumulators = {}
        return results

    def join(self, split: str, parts: list[dict[str, np.ndarray]]) -> None:
        results = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
        self.reduced[split] = results.get("", results)

    def ranged(self, split: str) -> dict[str, np.ndarray]:
        part = {}  # "<state name>|seen": the checkpoints observed, "<state name>|<array>": its arrays
        for name, accumulator in self.accumulators.items():
            if accumulator.seen:
                part[f"{name}|seen"] = np.array(sorted(accumulator.seen))
                part.update({f"{name}|{key}": array.cpu().numpy() for key, array in accumulator.state.items()})
        self.accumulators = {}
        return part

    def settle(self, split: str, parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        reduce = self.first.reduce
        results = {}
        for name, reduction in ({"": reduce} if isinstance(reduce, str) else reduce).items():
            whole = None
            for part in parts:
                if f"{name}|seen" in part:
                    state = {key.partition("|")[2]: torch.from_numpy(array) for key, array in part.items()
                             if key.partition("|")[0] == name and not key.endswith("|seen")}
                    piece = Accumulator(reduction, len(next(iter(state.values()))), self.dtype)
                    piece.seen, piece.state = set(part[f"{name}|seen"].tolist()), state
                    whole = piece if whole is None else merged(whole, piece)
            results[name] = (Accumulator(reduction, 0, self.dtype) if whole is None else whole).result()  # none seen: it says so
        return results

    def scores(self, scorer: CheckpointScore, split: str) -> Any:  # type: ignore[override]
        return scorer.finish(self.reduced, split)

    def state_bytes(self) -> dict[str, float]:
        size = tensor_bytes([t for a in self.accumulators.values() for t in a.state.values()])
        return dict.fromkeys(self.specs, size)


class DetectorHost(Host):
    """Every ``Detector`` on one feature space: the space (and the labels) of every split, kept at the last checkpoint."""

    mergeable = True

    def __init__(self, scorers: list[Detector], observed: frozenset[int]) -> None:
        super().__init__(scorers, observed)
        self.space = scorers[0].features
        self.parts: list[torch.Tensor] = []  # the batches of the split being probed
        self.labels: list[torch.Tensor] = []
        self.features: dict[str, np.ndarray] = {}  # split -> (n, d)
        self.train_labels: np.ndarray | None = None
        self.reads_head = any(scorer.uses_head for scorer in scorers)
        self.head: Head | None = None  # the last layer, kept at the first batch when a detector reads it
        self.fitted: set[str] = set()  # specs of the detectors fitted

    def start(self, split: str, size: int) -> None:
        self.parts, self.labels = [], []

    def update(self, batch: Batch, checkpoint: Checkpoint) -> None:
        if self.reads_head and self.head is None and batch.head is not None:
            weight, bias = batch.head.weight.detach(), batch.head.bias
            self.head = Head(weight.double().cpu().numpy().copy(), np.zeros(len(weight)) if bias is None
                             else bias.detach().double().cpu().numpy().copy())
        self.parts.append(batch[self.space].flatten(1).float().cpu())
        self.labels.append(batch.classes["label"].cpu())

    def partial(self, split: str) -> dict[str, np.ndarray]:
        part = {"features": torch.cat(self.parts).numpy(), "labels": torch.cat(self.labels).numpy()}
        if self.head is not None:
            part.update(head_weight=self.head.weight, head_bias=self.head.bias)
        self.parts, self.labels = [], []
        return part

    def join(self, split: str, parts: list[dict[str, np.ndarray]]) -> None:
        def joined(name: str) -> np.ndarray:  # one part is kept as it is: a feature space can be large
            return parts[0][name] if len(parts) == 1 else np.concatenate([part[name] for part in parts])

        self.features[split] = joined("features")
        if split == "train":
            self.train_labels = joined("labels")
        if self.head is None and (part := next((part for part in parts if "head_weight" in part), None)):
            self.head = Head(part["head_weight"], part["head_bias"])

    def ranged(self, split: str) -> dict[str, np.ndarray]:
        return self.partial(split) if self.parts else {}  # the features are taken at the last checkpoint alone

    def settle(self, split: str, parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        taken = [part for part in parts if part]
        if len(taken) != 1:
            raise ValueError(f"the features of {split} were taken in {len(taken)} ranges of checkpoints; once expected")
        return taken[0]

    def scores(self, scorer: Detector, split: str) -> np.ndarray:  # type: ignore[override]
        if scorer.spec not in self.fitted:
            if scorer.uses_head and self.head is None:
                raise ValueError(f"{scorer.name} reads the classifier's last linear layer, and this model gives none")
            head = {"head": self.head} if scorer.uses_head else {}
            scorer.fit(self.features["train"], self.train_labels, **head)
            self.fitted.add(scorer.spec)
        return scorer.decision_function(self.features[split])

    def state_bytes(self) -> dict[str, float]:
        return {scorer.spec: pickled_bytes(scorer) for scorer in self.scorers if scorer.spec in self.fitted}


class StreamingHost(Host):
    """One ``StreamingScorer``: the scorer keeps its own state."""

    def __init__(self, scorer: StreamingScorer, observed: frozenset[int]) -> None:
        super().__init__([scorer], observed)
        self.scorer = scorer

    def start(self, split: str, size: int) -> None:
        self.scorer.start(split, size)

    def update(self, batch: Batch, checkpoint: Checkpoint) -> None:
        self.scorer.update(batch, checkpoint)

    def end(self, split: str) -> None:
        """Nothing to fold: the scorer keeps its own state."""

    def scores(self, scorer: StreamingScorer, split: str) -> Any:  # type: ignore[override]
        return scorer.scores(split)

    def state_bytes(self) -> dict[str, float]:
        return {self.scorer.spec: pickled_bytes(self.scorer)}


def make_hosts(scorers: Collection[Scorer], observed: dict[str, frozenset[int]],
               dtype: torch.dtype = torch.float64) -> list[Host]:
    """The hosts of ``scorers`` (each observing ``observed[spec]``), in the order of their first scorers;
    ``dtype`` is that of the running sums and moments of ``CheckpointScore`` states."""
    shared: dict[tuple, list[Scorer]] = {}
    for scorer in scorers:
        if isinstance(scorer, CheckpointScore):
            key = CheckpointHost.key(scorer)
        elif isinstance(scorer, Detector):
            key = (Detector, scorer.features)
        else:
            key = (id(scorer),)
        shared.setdefault(key, []).append(scorer)
    hosts: list[Host] = []
    for members in shared.values():
        first = members[0]
        seen = observed[first.spec]
        if isinstance(first, CheckpointScore):
            hosts.append(CheckpointHost(members, seen, dtype))
        elif isinstance(first, Detector):
            hosts.append(DetectorHost(members, seen))
        else:
            hosts.append(StreamingHost(first, seen))
    return hosts
