"""The probe: the trained model's stored checkpoints in, one score table out.

Split by split, it loads each checkpoint's state and makes ONE pass over the split, which
computes the union of the signals the active scorers need (a single forward pass, and a
single backward pass for input gradients) and feeds every scorer. ``CheckpointScore``
variants that differ only in their ``finish_params`` share one pass and one running state.
When a split has been seen at every checkpoint its states are reduced, so only one split's
running states are in memory at once. At the last checkpoint the probe also records the
model's predictions and extracts each detector feature space once, for all detectors.

A scorer that raises is dropped with its error recorded; the others go on.

Each scorer's cost is measured as it runs (``Probe.cost``): the seconds of its own calls
(``start``, ``update``, ``reduce``, ``fit``, ``decision_function``, ``finish``, ``scores``) plus
its share of the passes, where the cost of something several scorers use is divided equally
among the scorers using it: a forward pass among every scorer active at that pass (detectors
on the embedding too, at the last checkpoint; the pixels need no forward pass), an input
gradient among those that asked for it, a running state's update among the variants sharing it. Its state bytes
are the peak size of its running state: the ``CheckpointScore`` state at the end of a split's
passes (in full for each variant sharing it: what the scorer needs alone), and the pickled
size of a streaming scorer at the end of each split, or of a fitted detector.
"""

from __future__ import annotations

import functools
import io
import pickle
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from bench.api import (
    EMBEDDING,
    LOGITS,
    PARAM_GRAD_NORM,
    PIXELS,
    Batch,
    Checkpoint,
    CheckpointScore,
    Detector,
    Scorer,
    StreamingScorer,
)
from bench.gradients import GradNormComputer
from bench.reductions import Group
from bench.specs import parse_spec
from bench.training import model_input


@dataclass
class ProbeSplit:
    """A split as the probe holds it: tensors on the device, and whether its labels are trusted."""

    inputs: torch.Tensor
    labels: torch.Tensor
    trusted_labels: bool  # False: label-dependent signals use the predicted class
    noisy: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)


class _ByteCounter(io.RawIOBase):
    """A file that keeps only the number of bytes written to it."""

    def __init__(self) -> None:
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        size = memoryview(data).nbytes  # pickle writes bytes, and large arrays as buffers
        self.count += size
        return size


def pickled_bytes(obj: Any) -> float:
    """The size of ``obj`` pickled (its arrays, tensors and fitted estimators), without holding the bytes;
    NaN for an object that cannot be pickled (its size is then unknown, which is not the scorer's failure)."""
    counter = _ByteCounter()
    try:
        pickle.Pickler(counter, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    except Exception:  # a plugin's object: any error of its own pickling
        return float("nan")
    return counter.count


def state_bytes(group: Group) -> int:
    return sum(t.nelement() * t.element_size() for a in group.accumulators.values() for t in a.state.values())


@functools.cache
def gradient_of(signal: str) -> tuple[str, str]:
    """(of, cls) of an ``input_grad[of=...,cls=...]`` signal, parsed once rather than per batch."""
    params = parse_spec(signal)[1]
    return params["of"], params["cls"]


class Probe:
    """Drives the scorers of one unit: ``run`` over the stored checkpoints gives the score table."""

    def __init__(
        self,
        splits: dict[str, ProbeSplit],
        scorers: list[Scorer],
        input_shape: tuple[int, ...],
        batch_size: int = 256,
        known: dict[str, dict[str, np.ndarray]] | None = None,
        state_dtype: torch.dtype = torch.float64,
    ) -> None:
        """``known`` holds finished columns (spec -> split -> scores), whose scorers are not run again;
        ``state_dtype`` is that of the running sums and moments of ``CheckpointScore`` states."""
        self.splits = splits
        self.input_shape = input_shape
        self.batch_size = batch_size
        self.known = known or {}
        self.grad_norms = GradNormComputer()
        todo = [s for s in scorers if s.spec not in self.known]
        groups: dict[tuple, list[CheckpointScore]] = {}
        for scorer in todo:
            if isinstance(scorer, CheckpointScore):
                groups.setdefault(Group.key(scorer), []).append(scorer)
        self.groups = [Group(members, state_dtype) for members in groups.values()]
        self.streaming = [s for s in todo if isinstance(s, StreamingScorer)]
        self.detectors = [s for s in todo if isinstance(s, Detector)]
        self.order = [s.spec for s in scorers]
        self.failures: dict[str, str] = {}
        self.predictions: dict[str, np.ndarray] = {}
        self.final_classes: dict[str, torch.Tensor] = {}
        self.features: dict[str, dict[str, np.ndarray]] = {}  # feature space -> split -> (n, d)
        self.cost = {s.spec: {"seconds": 0.0, "state_bytes": 0} for s in todo}  # see the module's docstring
        self.device = next(iter(splits.values())).inputs.device

    def _now(self) -> float:
        """The time, once the device's queued work is done (CUDA runs asynchronously)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _charge(self, scorers: Sequence[Scorer], seconds: float) -> None:
        """``seconds`` divided equally among ``scorers``, the ones that used what it paid for."""
        for scorer in scorers:
            self.cost[scorer.spec]["seconds"] += seconds / len(scorers)

    def _peak_bytes(self, scorers: Sequence[Scorer], size: float) -> None:
        for scorer in scorers:
            cost = self.cost[scorer.spec]
            cost["state_bytes"] = size if np.isnan(size) else max(cost["state_bytes"], size)

    def _call(self, scorers: list[Scorer], method: Callable, *args) -> Any:
        """Run ``method``; on error, record it for ``scorers`` (those it serves) and drop them from the run."""
        if any(s.spec in self.failures for s in scorers):
            return None
        started = self._now()
        try:
            return method(*args)
        except torch.OutOfMemoryError:
            raise  # the device's, not the scorer's: the unit stops with advice (``bench.unit``)
        except Exception as error:
            last = traceback.extract_tb(error.__traceback__)[-1]
            for scorer in scorers:
                self.failures[scorer.spec] = f"{type(error).__name__}: {error} (at {last.filename}:{last.lineno})"
            return None
        finally:
            self._charge(scorers, self._now() - started)

    def _alive(self, scorers: list[Scorer]) -> bool:
        return not any(s.spec in self.failures for s in scorers)

    def _feeders(self) -> list[tuple[list[Scorer], Any]]:
        """(the scorers it serves, the object fed) for every group and streaming scorer still running."""
        feeders = [(g.scorers, g) for g in self.groups] + [([s], s) for s in self.streaming]
        return [(scorers, fed) for scorers, fed in feeders if self._alive(scorers)]

    def _needs(self) -> set[str]:
        return set().union(*(s.needs for scorers, _ in self._feeders() for s in scorers))

    def run(self, model: nn.Module, checkpoints: Sequence[tuple[Checkpoint, dict[str, torch.Tensor]]],
            on_pass: Callable[[], None] | None = None) -> dict[str, dict[str, np.ndarray]]:
        """Probe ``model`` loaded with each stored state (in schedule order), split by split; the score table.

        ``seconds`` then holds the time of the passes (``probe``) and of the final scores and detectors (``finish``).
        """
        started = time.perf_counter()
        trainable = [p for p in model.parameters() if p.requires_grad]
        was_training = model.training
        model.eval()
        for parameter in trainable:  # the input gradient alone is wanted; weight gradients would cost a third more
            parameter.requires_grad_(False)
        try:
            if users := [s for scorers, _ in self._feeders() for s in scorers if any("cls=final" in n for n in s.needs)]:
                before = self._now()
                model.load_state_dict(checkpoints[-1][1])
                self._final_classes(model)
                self._charge(users, self._now() - before)
            for name, split in self.splits.items():
                for scorers, fed in self._feeders():
                    if isinstance(fed, Group):
                        self._call(scorers, fed.start, len(split))
                    else:
                        self._call(scorers, fed.start, name, len(split))
                for checkpoint, state in checkpoints:
                    model.load_state_dict(state)
                    self._pass(model, name, checkpoint)
                    if on_pass is not None:
                        on_pass()
                for scorers, fed in self._feeders():
                    if isinstance(fed, Group):
                        self._peak_bytes(scorers, state_bytes(fed))
                        self._call(scorers, fed.reduce, name)
                    else:
                        self._peak_bytes(scorers, pickled_bytes(fed))
        finally:
            for parameter in trainable:
                parameter.requires_grad_(True)
            model.train(was_training)
        finishing = time.perf_counter()
        table = self._finish()
        self.seconds = {"probe": finishing - started, "finish": time.perf_counter() - finishing}
        return table

    @torch.no_grad()
    def _final_classes(self, model: nn.Module) -> None:
        """Each split's labels where trusted, otherwise the class the final ``model`` predicts."""
        for name, split in self.splits.items():
            self.final_classes[name] = split.labels if split.trusted_labels else torch.cat([
                model(model_input(split.inputs[start:start + self.batch_size], self.input_shape)).argmax(1)
                for start in range(0, len(split), self.batch_size)
            ])

    def _pass(self, model: nn.Module, name: str, checkpoint: Checkpoint) -> None:
        active = [(scorers, fed) for scorers, fed in self._feeders()
                  if self._call(scorers, scorers[0].observes, checkpoint)]
        needs = set().union(*(s.needs for scorers, _ in active for s in scorers))
        extracting = [d for d in self.detectors if self._alive([d])] if checkpoint.is_last else []
        feature_spaces = {d.features for d in extracting}
        if not needs and not checkpoint.is_last:
            return
        users = [s for scorers, _ in active for s in scorers] + extracting
        split = self.splits[name]
        predictions, features = [], {space: [] for space in feature_spaces}
        for start in range(0, len(split), self.batch_size):
            batch, seconds = self._signals(model, name, split, start, needs | feature_spaces)
            for signal, spent in seconds.items():  # the forward pass (LOGITS) serves all but pixel-only scorers
                self._charge([s for s in users if signal in s.needs or (signal == LOGITS and s.needs - {PIXELS})], spent)
            for scorers, fed in active:
                self._call(scorers, fed.update, batch, checkpoint)
            if checkpoint.is_last:
                predictions.append(batch[LOGITS].argmax(1).cpu())
                for space in feature_spaces:
                    features[space].append(batch[space].flatten(1).float().cpu())
        if checkpoint.is_last:
            self.predictions[name] = torch.cat(predictions).numpy()
            for space, parts in features.items():
                self.features.setdefault(space, {})[name] = torch.cat(parts).numpy()

    def _signals(self, model: nn.Module, name: str, split: ProbeSplit, start: int,
                 needs: set[str]) -> tuple[Batch, dict[str, float]]:
        """The batch's signals, and the seconds each one took (``LOGITS``: the forward pass)."""
        seconds, started = {}, self._now()
        index = torch.arange(start, min(start + self.batch_size, len(split)), device=split.labels.device)
        label = split.labels[index]
        x = model_input(split.inputs[index], self.input_shape)
        gradients = sorted(signal for signal in needs if signal.startswith("input_grad["))
        x.requires_grad_(bool(gradients))
        with torch.set_grad_enabled(bool(gradients)):
            embedding = model.embed(x)
            logits = model.head(embedding)
            seconds[LOGITS] = self._now() - started
            classes = {"target": label if split.trusted_labels else logits.argmax(1), "label": label}
            if name in self.final_classes:
                classes["final"] = self.final_classes[name][index]

            def output(signal: str) -> torch.Tensor:
                of, cls = gradient_of(signal)
                values = logits.softmax(1) if of == "prob" else logits
                # Examples are independent in eval mode, so the gradient of a sum is every example's gradient.
                return values.gather(1, classes[cls][:, None]).sum()

            signals = {}
            for signal in gradients:
                started = self._now()
                signals[signal] = torch.autograd.grad(output(signal), x, retain_graph=signal != gradients[-1])[0]
                seconds[signal] = self._now() - started
        signals[LOGITS] = logits.detach()
        if EMBEDDING in needs:
            signals[EMBEDDING] = embedding.detach()
        if PIXELS in needs:
            signals[PIXELS] = x.detach()
        if PARAM_GRAD_NORM in needs:
            started = self._now()
            signals[PARAM_GRAD_NORM] = self.grad_norms(model, x.detach(), classes["target"])
            seconds[PARAM_GRAD_NORM] = self._now() - started
        return Batch(split=name, index=index, classes=classes, signals=signals), seconds

    def _finish(self) -> dict[str, dict[str, np.ndarray]]:
        """The score table: per split, id, label, pred, noisy and one column per scorer that did not fail."""
        scores: dict[str, dict[str, np.ndarray]] = dict(self.known)  # scorer spec -> split -> scores
        train_labels = self.splits["train"].labels.cpu().numpy()
        for detector in self.detectors:
            if not self._alive([detector]):
                continue
            features = self.features[detector.features]
            self._call([detector], detector.fit, features["train"], train_labels)
            if self._alive([detector]):
                self._peak_bytes([detector], pickled_bytes(detector))
            for name in self.splits:
                self._collect(scores, detector, name, detector.decision_function, features[name])
        for group in self.groups:
            for scorer in group.scorers:
                for name in self.splits:
                    self._collect(scores, scorer, name, scorer.finish, group.reduced, name)
        for scorer in self.streaming:
            for name in self.splits:
                self._collect(scores, scorer, name, scorer.scores, name)
        table = {}
        for name, split in self.splits.items():
            n = len(split)
            table[name] = {
                "id": np.arange(n),
                "label": split.labels.cpu().numpy(),
                "pred": self.predictions[name],
                "noisy": split.noisy if split.noisy is not None else np.zeros(n, dtype=bool),
            }
            table[name].update({spec: scores[spec][name] for spec in self.order if spec not in self.failures})
        return table

    def _collect(self, scores: dict, scorer: Scorer, name: str, method: Callable, *args) -> None:
        """Score one split with ``method(*args)`` and keep the result if it is one float per example."""
        result = self._call([scorer], method, *args)
        if scorer.spec in self.failures:
            return
        result = np.asarray(result, dtype=np.float64)
        expected = (len(self.splits[name]),)
        if result.shape != expected:
            self.failures[scorer.spec] = f"returned scores of shape {result.shape} for split {name!r}; expected {expected}"
            return
        scores.setdefault(scorer.spec, {})[name] = result
