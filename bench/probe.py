"""The probe: at a checkpoint, one pass over every scored split feeds every scorer.

For each batch the probe computes the union of the signals the active scorers need, from a
single forward pass (and a single backward pass when an input gradient is needed), and
streams them to the scorers. At the last checkpoint it also records the model's predictions
and extracts each detector feature space once, for all detectors to share. Scorers that can
share a running state (``DynamicsScorer.state_key``) are updated once for all of them.

A scorer that raises is dropped with its error recorded; the others go on.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bench.api import (
    EMBEDDING,
    FINAL_TARGET_SIGNALS,
    INPUT_GRAD,
    INPUT_GRAD_FINAL,
    INPUT_GRAD_PROB,
    INPUT_GRAD_PROB_FINAL,
    PARAM_GRAD_NORM,
    PIXELS,
    Batch,
    Checkpoint,
    Detector,
    DynamicsScorer,
    Scorer,
)
from bench.gradients import GradNormComputer
from bench.training import model_input

INPUT_GRADIENTS = (INPUT_GRAD, INPUT_GRAD_PROB, INPUT_GRAD_FINAL, INPUT_GRAD_PROB_FINAL)
PROBABILITY_GRADIENTS = frozenset({INPUT_GRAD_PROB, INPUT_GRAD_PROB_FINAL})


@dataclass
class ProbeSplit:
    """A split as the probe holds it: tensors on the device, and whether its labels are trusted."""

    inputs: torch.Tensor
    labels: torch.Tensor
    trusted_labels: bool  # False: label-dependent signals use the predicted class
    noisy: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)


class Probe:
    """Drives the scorers of one unit: ``observe`` at each checkpoint, then ``finish`` for the score table."""

    def __init__(
        self,
        splits: dict[str, ProbeSplit],
        scorers: list[Scorer],
        input_shape: tuple[int, ...],
        batch_size: int = 256,
        known: dict[str, dict[str, np.ndarray]] | None = None,
    ) -> None:
        """``known`` holds finished columns (spec -> split -> scores), whose scorers are not run again."""
        self.splits = splits
        self.input_shape = input_shape
        self.batch_size = batch_size
        self.known = known or {}
        self.grad_norms = GradNormComputer()
        self.dynamics: list[DynamicsScorer] = []  # the scorers whose running state the probe updates
        self.sharing: dict[DynamicsScorer, DynamicsScorer] = {}  # scorer -> the one whose state it takes
        for scorer in scorers:
            if not isinstance(scorer, DynamicsScorer) or scorer.spec in self.known:
                continue
            owner = next((s for s in self.dynamics if scorer.state_key is not None and s.state_key == scorer.state_key), None)
            if owner is None:
                self.dynamics.append(scorer)
            else:
                self.sharing[scorer] = owner
        self.detectors = [s for s in scorers if isinstance(s, Detector) and s.spec not in self.known]
        self.order = [s.spec for s in scorers]
        self.failures: dict[str, str] = {}
        self.predictions: dict[str, np.ndarray] = {}
        self.final_targets: dict[str, torch.Tensor] | None = None
        self.features: dict[str, dict[str, np.ndarray]] = {}  # feature space -> split -> (n, d)
        for scorer in self.dynamics:
            for name, split in splits.items():
                self._call(scorer, scorer.start, name, len(split))

    def _call(self, scorer: Scorer, method, *args):
        """Run a scorer method; on error, record it and drop the scorer from the run."""
        if scorer.spec in self.failures:
            return None
        try:
            return method(*args)
        except Exception as error:
            last = traceback.extract_tb(error.__traceback__)[-1]
            self.failures[scorer.spec] = f"{type(error).__name__}: {error} (at {last.filename}:{last.lineno})"
            return None

    def _active(self, scorers: list, checkpoint: Checkpoint | None = None) -> list:
        alive = [s for s in scorers if s.spec not in self.failures]
        return alive if checkpoint is None else [s for s in alive if self._call(s, s.observes, checkpoint)]

    @property
    def needs_final_model(self) -> bool:
        """Whether a scorer needs the final target, so that ``use_final_model`` must come before ``observe``."""
        return any(s.needs & FINAL_TARGET_SIGNALS for s in self.dynamics)

    @torch.no_grad()
    def use_final_model(self, model: nn.Module) -> None:
        """Fix every split's final target: its labels where trusted, otherwise the class ``model`` predicts."""
        was_training = model.training
        model.eval()
        self.final_targets = {}
        for name, split in self.splits.items():
            if split.trusted_labels:
                self.final_targets[name] = split.labels
                continue
            self.final_targets[name] = torch.cat([
                model(model_input(split.inputs[start:start + self.batch_size], self.input_shape)).argmax(1)
                for start in range(0, len(split), self.batch_size)
            ])
        model.train(was_training)

    def observe(self, model: nn.Module, checkpoint: Checkpoint, splits: list[str] | None = None) -> None:
        """One pass over every split (or over ``splits``) with the model as it is at ``checkpoint``."""
        active = self._active(self.dynamics, checkpoint)
        needs = set().union(*(s.needs for s in active))
        if needs & FINAL_TARGET_SIGNALS and self.final_targets is None:
            raise RuntimeError(f"signals {sorted(needs & FINAL_TARGET_SIGNALS)} need the final model's predictions: "
                               "call Probe.use_final_model(final model) before the first observe")
        feature_spaces = set().union(*(d.needs for d in self._active(self.detectors))) if checkpoint.is_last else set()
        if not needs and not checkpoint.is_last:
            return
        was_training = model.training
        trainable = [p for p in model.parameters() if p.requires_grad]
        model.eval()
        for parameter in trainable:  # the input gradient alone is wanted; weight gradients would cost a third more
            parameter.requires_grad_(False)
        try:
            self._pass(model, checkpoint, active, needs, feature_spaces, splits or list(self.splits))
        finally:
            for parameter in trainable:
                parameter.requires_grad_(True)
            model.train(was_training)

    def close(self, split: str) -> None:
        """``split`` has been observed at every checkpoint: the scorers may free what their scores do not need."""
        for scorer in self._active(self.dynamics):
            self._call(scorer, scorer.close, split)

    def _pass(self, model: nn.Module, checkpoint: Checkpoint, active: list, needs: set[str], feature_spaces: set[str],
              names: list[str]) -> None:
        for name in names:
            split = self.splits[name]
            predictions, features = [], {space: [] for space in feature_spaces}
            for start in range(0, len(split), self.batch_size):
                batch = self._signals(model, name, split, start, needs | feature_spaces)
                for scorer in active:
                    self._call(scorer, scorer.update, batch, checkpoint)
                if checkpoint.is_last:
                    predictions.append(batch.logits.argmax(1).cpu())
                    for space in feature_spaces:
                        features[space].append(getattr(batch, space).flatten(1).float().cpu())
            if checkpoint.is_last:
                self.predictions[name] = torch.cat(predictions).numpy()
                for space, parts in features.items():
                    self.features.setdefault(space, {})[name] = torch.cat(parts).numpy()

    def _signals(self, model: nn.Module, name: str, split: ProbeSplit, start: int, needs: set[str]) -> Batch:
        index = torch.arange(start, min(start + self.batch_size, len(split)), device=split.labels.device)
        label = split.labels[index]
        x = model_input(split.inputs[index], self.input_shape)
        gradients = [kind for kind in INPUT_GRADIENTS if kind in needs]
        final_target = self.final_targets[name][index] if self.final_targets is not None else None
        x.requires_grad_(bool(gradients))
        with torch.set_grad_enabled(bool(gradients)):
            embedding = model.embed(x)
            logits = model.head(embedding)
            target = label if split.trusted_labels else logits.argmax(1)

            def output(kind: str) -> torch.Tensor:
                values = logits.softmax(1) if kind in PROBABILITY_GRADIENTS else logits
                classes = final_target if kind in FINAL_TARGET_SIGNALS else target
                # Examples are independent in eval mode, so the gradient of a sum is every example's gradient.
                return values.gather(1, classes[:, None]).sum()

            grads = {kind: torch.autograd.grad(output(kind), x, retain_graph=kind != gradients[-1])[0] for kind in gradients}
        return Batch(
            split=name,
            index=index,
            label=label,
            target=target,
            final_target=final_target,
            logits=logits.detach(),
            embedding=embedding.detach() if EMBEDDING in needs else None,
            input_grad=grads.get(INPUT_GRAD),
            input_grad_prob=grads.get(INPUT_GRAD_PROB),
            input_grad_final=grads.get(INPUT_GRAD_FINAL),
            input_grad_prob_final=grads.get(INPUT_GRAD_PROB_FINAL),
            pixels=x.detach() if PIXELS in needs else None,
            param_grad_norm=self.grad_norms(model, x.detach(), target) if PARAM_GRAD_NORM in needs else None,
        )

    def finish(self) -> dict[str, dict[str, np.ndarray]]:
        """The score table: per split, id, label, pred, noisy and one column per scorer that did not fail."""
        scores: dict[str, dict[str, np.ndarray]] = dict(self.known)  # scorer spec -> split -> scores
        train_labels = self.splits["train"].labels.cpu().numpy()
        for detector in self._active(self.detectors):
            features = self.features[detector.features]
            self._call(detector, detector.fit, features["train"], train_labels)
            for name in self.splits:
                self._collect(scores, detector, name, detector.decision_function, features[name])
        for scorer, owner in self.sharing.items():
            if owner.spec in self.failures:
                self.failures[scorer.spec] = f"shares the running state of {owner.spec}, which failed: {self.failures[owner.spec]}"
            else:
                self._call(scorer, scorer.share_state, owner)
        for scorer in self._active([*self.dynamics, *self.sharing]):
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

    def _collect(self, scores: dict, scorer: Scorer, name: str, method, *args) -> None:
        """Score one split with ``method(*args)`` and keep the result if it is one float per example."""
        result = self._call(scorer, method, *args)
        if scorer.spec in self.failures:
            return
        result = np.asarray(result, dtype=np.float64)
        expected = (len(self.splits[name]),)
        if result.shape != expected:
            self.failures[scorer.spec] = f"returned scores of shape {result.shape} for split {name!r}; expected {expected}"
            return
        scores.setdefault(scorer.spec, {})[name] = result
