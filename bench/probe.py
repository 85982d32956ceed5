"""The probe: the trained model's stored checkpoints in, one score table out.

Split by split, it loads each checkpoint's state and makes ONE pass over the split, which
computes the union of the signals the hosts observing that checkpoint need (``bench.signals``:
a single forward pass, and a single backward pass per input gradient) and hands every batch
to those hosts (``bench.hosts``, one adapter per scorer form). A checkpoint no host observes
is skipped, but for the last, whose predictions the table records. What each scorer observes
is resolved once, before the first pass, by asking its ``observes`` of every checkpoint in
order. When a split has been seen at every checkpoint its hosts end it, so only one split's
running states are in memory at once; once every split has ended, each scorer's scores are
read from its host.

A probe may be cut into shards (``run``'s ``sharding``, the setting ``shards``): each split into consecutive
ranges of whole batches, each range probed alone by a ``shard`` (a probe of those examples, with hosts of its own
that hand back what they would keep of the split), then the parts put end to end (``join``). Every batch, and so
every example's arithmetic, is the unsharded probe's, and no reduction mixes examples: the table is the same bit
for bit, while a shard holds the running states of its examples alone. The reduced values of each shard are joined
before ``finish`` (VoG's class normalisation reads the whole training split); detectors keep each shard's
features and are fitted once, on the joined training features. A ``StreamingScorer`` keeps a state of its own
that does not merge, and fails alone in a sharded probe. The checkpoints may be cut too (``checkpoint_shards``):
a shard of a range of checkpoints hands back its hosts' running states (``Host.ranged``), which ``_settled``
merges over the ranges of one range of examples (``Host.settle``, each reduction's merge) into what a shard of all
the checkpoints would have handed back; sums and moments then come out to rounding, not bit for bit.

The signal ``heldout_logits`` is computed once, before the passes, and only if a scorer needs
it: the training split through the cross-fitted models ``run`` is given (each fold through
the model that did not train on it; ``bench.unit`` trains them), the other splits' being
the final model's logits of the last pass. A scorer that needs it fails alone when the unit
has no cross-fitted models, or when it observes a checkpoint before the last.

A scorer that lacks what it reads (its ``lacking``: one checkpoint for a score over training,
no initialisation, no learning rates) is skipped with that reason, before any pass. A scorer
that raises (in ``observes``, or in any call of its host) is dropped with its error
recorded; the others go on. A host's calls serve all its scorers, which fail together;
scoring is asked of each scorer alone. Scores that are not one float per example are a failure too.

Each scorer's cost is measured as it runs (``Probe.cost``, by a ``bench.meter.Meter``, which
synchronises the device once per pass): the seconds of its host's calls (``start``,
``update``, ``end``, ``scores``: the ``reduce``, ``finish``, ``fit``, ``decision_function`` and
``scores`` of the scorer form) and of its ``observes``, plus its share of the passes, where
the cost of something several scorers use is divided equally among the scorers using it: a
forward pass among every scorer active at that pass (detectors on the embedding too, at the
last checkpoint; the pixels need no forward pass), an input gradient (or the parameter-gradient
norms) among those that asked for it (where the norms' backward pass gives the target probability's
input gradient, those asking for that gradient are charged that pass, the others the norms), the final model's classes among those whose signals
refer to them, the cross-fitted models' pass over the training split among those that need
``heldout_logits``, a host's call among the variants sharing its state. Its state bytes are the
peak size of its running state: the ``CheckpointScore`` state at the end of a split's passes
(in full for each variant sharing it: what the scorer needs alone), and the pickled size of a
streaming scorer at the end of each split, or of a fitted detector.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bench.api import Batch, Checkpoint, Scorer
from bench.gradients import GradNormComputer
from bench.hosts import Host, make_hosts, needs_of, observed_checkpoints
from bench.meter import Meter
from bench.signals import HELDOUT_LOGITS, LOGITS, PIXELS, Signal, compute_signals
from bench.store import readable, save_archive
from bench.training import Inputs, inputs_at, model_input


@dataclass
class ProbeSplit:
    """A split as the probe holds it: tensors on the device, and whether its labels are trusted."""

    inputs: Inputs
    labels: torch.Tensor
    trusted_labels: bool  # False: label-dependent signals use the predicted class
    noisy: np.ndarray | None = None
    ids: np.ndarray | None = None  # each example's index in the dataset's split; None: its position here

    def sample(self, index: np.ndarray) -> ProbeSplit:
        """The examples at ``index`` (sorted indices into this split), which keep their ids."""
        at = torch.as_tensor(index, device=self.labels.device)
        return ProbeSplit(inputs_at(self.inputs, at), self.labels[at], self.trusted_labels,
                          None if self.noisy is None else self.noisy[index],
                          index if self.ids is None else self.ids[index])

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Folds:
    """A unit's cross-fitted models (``bench.unit``): the fold of each training example, and by fold k the final
    state of the model trained on every other fold."""

    fold: np.ndarray  # (n_train,) in 0..K-1
    states: list[dict[str, torch.Tensor]]

    def problem(self, n_train: int) -> str | None:
        """What makes these folds unfit for a training split of ``n_train`` examples, or None."""
        if len(self.fold) != n_train or not np.isin(self.fold, np.arange(len(self.states))).all():
            return (f"the cross-fitted models do not fit the training split: {len(self.fold)} fold numbers for "
                    f"{n_train} examples, in {sorted(set(self.fold.tolist()))} for {len(self.states)} models")
        return None


@dataclass
class Shard:
    """What a shard of the probe hands back for ``Probe.join``: by split, each live host's part (by its position
    among the probe's hosts: arrays by name) and the final model's predictions; the scorers that failed in the
    shard; seconds and peak state bytes by scorer."""

    partials: dict[str, dict[int, dict[str, np.ndarray]]]
    predictions: dict[str, np.ndarray]
    failures: dict[str, str]
    seconds: dict[str, float]
    peak_bytes: dict[str, float]


ShardMap = Callable[[Callable[["ShardWork"], Shard], list["ShardWork"]], Iterable[Shard]]  # (probe_shard, works) -> shards


@dataclass(frozen=True)
class Sharding:
    """How ``Probe.run`` cuts the probe: every split into ``count`` ranges of examples, and the checkpoints into
    ``checkpoint_count`` ranges, a shard for each pair; shard k (counted range of examples first) kept at ``path(k)``
    (None: not kept), where a rerun after an interruption finds it, so that only the shards not kept are probed again;
    and ``map(probe_shard, works)``, which runs ``probe_shard`` (``Probe._probe_work`` of this probe, model and
    checkpoints) on each shard's ``ShardWork`` and yields their ``Shard``s in order, on workers
    (``bench.executors``; None: one after another, here)."""

    count: int = 1
    path: Callable[[int], Path] | None = None
    map: ShardMap | None = None
    checkpoint_count: int = 1


@dataclass(frozen=True)
class ShardWork:
    """One shard's examples (sorted positions by split) and, when the checkpoints are cut too, the range of their
    indices it probes (``first`` to ``stop``; None: all)."""

    rows: dict[str, np.ndarray]
    checkpoints: tuple[int, int] | None = None


def save_shard(path: Path, shard: Shard, layout: dict[str, Any]) -> None:
    """``shard`` as one .npz, atomically, with the ``layout`` it was made for (its hosts' specs, its rows)."""
    arrays = {f"partial/{split}/{position}/{name}": value for split, parts in shard.partials.items()
              for position, part in parts.items() for name, value in part.items()}
    arrays.update({f"pred/{split}": values for split, values in shard.predictions.items()})
    save_archive(path, arrays, {"layout": layout, "seconds": shard.seconds, "peak_bytes": shard.peak_bytes})


def load_shard(path: Path, layout: dict[str, Any]) -> Shard | None:
    """The shard ``save_shard`` wrote, if it was made for ``layout``; None if for another (it is probed again)."""
    partials: dict[str, dict[int, dict[str, np.ndarray]]] = {}
    predictions = {}
    with np.load(path, allow_pickle=False) as archive:
        meta = json.loads(str(archive["meta"]))
        if meta["layout"] != layout:
            return None
        for key in archive.files:
            kind, _, rest = key.partition("/")
            if kind == "partial":
                split, position, name = rest.rsplit("/", 2)
                partials.setdefault(split, {}).setdefault(int(position), {})[name] = archive[key]
            elif kind == "pred":
                predictions[rest] = archive[key]
    return Shard(partials, predictions, {}, meta["seconds"], meta["peak_bytes"])


NO_FOLDS = "heldout_logits needs cross-fitted models: run with --cross-fit 5 (K more trainings per unit for K folds)"


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode with its parameters frozen, restored afterwards: the input gradient alone is
    wanted, and weight gradients would cost a third more."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    was_training = model.training
    model.eval()
    for parameter in trainable:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in trainable:
            parameter.requires_grad_(True)
        model.train(was_training)


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
        self.scorers = scorers
        self.input_shape = input_shape
        self.batch_size = batch_size
        self.known = known or {}
        self.state_dtype = state_dtype
        self.todo = [s for s in scorers if s.spec not in self.known]
        self.failures: dict[str, str] = {}  # spec -> error
        self.skipped: dict[str, str] = {}  # spec -> what the checkpoints lack for it
        self.observed: dict[str, frozenset[int]] = {}  # spec -> indices of the checkpoints it reads, resolved by ``run``
        self.hosts: list[Host] = []
        self.predictions: dict[str, np.ndarray] = {}
        self.final_classes: dict[str, torch.Tensor] = {}
        self.heldout: dict[str, torch.Tensor] = {}  # split -> heldout_logits, where they are not the final model's
        self.grad_norms = GradNormComputer()
        self.meter = Meter(next(iter(splits.values())).labels.device)
        self.peak_bytes: dict[str, float] = {}
        self.partials: dict[str, dict[int, Any]] = {}  # in a shard: split -> host position -> its state

    @property
    def cost(self) -> dict[str, dict[str, float]]:
        """Per scorer run here: its seconds and peak state bytes (see the module's docstring)."""
        return {s.spec: {"seconds": self.meter.seconds.get(s.spec, 0.0), "state_bytes": self.peak_bytes.get(s.spec, 0)}
                for s in self.todo}

    def passes(self, checkpoints: int, shards: int = 1) -> int:
        """How many passes over a split (or a shard's part of one) ``run`` makes: for a progress bar."""
        batches = [-(-len(split) // self.batch_size) for split in self.splits.values()]
        return checkpoints * sum(min(shards, count) for count in batches)

    def wants(self, signal: Signal) -> bool:
        """Whether a scorer to be computed declares ``signal`` among its needs (asked before ``run``, to prepare it)."""
        def declared(scorer: Scorer) -> frozenset[str]:
            try:
                return frozenset(scorer.needs)
            except Exception:  # a plugin's broken ``needs``: its scorer fails alone in ``run``
                return frozenset()
        return any(signal in declared(scorer) for scorer in self.todo)

    def _guard(self, specs: Sequence[str], call: Callable, *args) -> Any:
        """``call(*args)`` charged to ``specs`` (those it serves); on error, record it for them and drop them from the run."""
        if any(spec in self.failures for spec in specs):
            return None
        self.meter.restart()
        try:
            return call(*args)
        except torch.OutOfMemoryError:
            raise  # the device's, not the scorer's: the unit stops with advice (``bench.unit``)
        except Exception as error:
            last = traceback.extract_tb(error.__traceback__)[-1]
            for spec in specs:
                self.failures[spec] = f"{type(error).__name__}: {error} (at {last.filename}:{last.lineno})"
            return None
        finally:
            self.meter.lap(specs)

    def _alive(self) -> list[Host]:
        return [host for host in self.hosts if not any(spec in self.failures for spec in host.specs)]

    def _keep_peak_bytes(self, host: Host) -> None:
        for spec, size in host.state_bytes().items():
            self.peak_bytes[spec] = size if np.isnan(size) else max(self.peak_bytes.get(spec, 0), size)

    def run(self, model: nn.Module, checkpoints: Sequence[tuple[Checkpoint, dict[str, torch.Tensor]]],
            on_pass: Callable[[], None] | None = None, folds: Folds | None = None,
            sharding: Sharding = Sharding()) -> dict[str, dict[str, np.ndarray]]:
        """Probe ``model`` loaded with each stored state (in schedule order), split by split; the score table.
        ``folds``: the unit's cross-fitted models, for the scorers that need ``heldout_logits``. ``sharding.count`` >
        1 cuts every split into that many consecutive ranges of whole batches, probes each range alone (``shard``)
        and joins them (``join``): the table of the whole, bit for bit, as every batch and every example's arithmetic
        is the same (see ``Sharding``).

        ``seconds`` then holds the time of the passes (``probe``) and of the scoring (``finish``).
        """
        started = time.perf_counter()
        self._resolve([checkpoint for checkpoint, _ in checkpoints])
        if sharding.count > 1 or sharding.checkpoint_count > 1:
            self.join(self._shards(model, checkpoints, on_pass, folds, sharding))
        else:
            with evaluating(model):
                self._probe(model, checkpoints, on_pass, folds, end=True)
        self.meter.settle()
        finishing = time.perf_counter()
        table = self._table()
        self.meter.settle()
        self.seconds = {"probe": finishing - started, "finish": time.perf_counter() - finishing}
        return table

    def _shards(self, model: nn.Module, checkpoints: Sequence[tuple[Checkpoint, dict[str, torch.Tensor]]],
                on_pass: Callable[[], None] | None, folds: Folds | None, sharding: Sharding) -> list[Shard]:
        """Each shard, in order: found at ``sharding.path(k)`` when made by the same hosts on the same examples, else
        probed (by ``sharding.map``, if given) and kept there. A host whose state does not merge fails first."""
        for host in self._alive():
            if not host.mergeable:
                for spec in host.specs:
                    self.failures[spec] = ("keeps a state of its own (a StreamingScorer), which does not merge: run it "
                                           "without shards")
        def passes_of(work: ShardWork) -> None:  # a shard probed elsewhere, or kept: its passes at once
            first, stop = work.checkpoints or (0, len(checkpoints))
            for _ in range((stop - first) * len(work.rows) if on_pass is not None else 0):
                on_pass()

        ranges = checkpoint_ranges(len(checkpoints), sharding.checkpoint_count)
        kept: dict[int, Shard] = {}
        todo = []  # (k, work, layout): the shards to probe
        sizes = {name: len(split) for name, split in self.splits.items()}
        for e, rows in enumerate(example_ranges(sizes, sharding.count, self.batch_size)):
            rows = {name: index for name, index in rows.items() if len(index)}
            if not rows:
                continue  # more shards than batches in any split: this one has no examples
            for c, within in enumerate(ranges):
                k, work = e * len(ranges) + c, ShardWork(rows, None if len(ranges) == 1 else within)
                layout = {"hosts": [host.specs for host in self.hosts],
                          "rows": {name: [int(index[0]), int(index[-1]) + 1] for name, index in rows.items()},
                          **({"checkpoints": list(within)} if work.checkpoints else {})}
                path = None if sharding.path is None else sharding.path(k)
                if path is not None and (piece := readable(functools.partial(load_shard, layout=layout), path)):
                    kept[k] = piece
                    passes_of(work)
                else:
                    todo.append((k, work, layout))
        probe_work = functools.partial(self._probe_work, model=model, checkpoints=checkpoints, folds=folds)
        if sharding.map is None:
            probed = (probe_work(work, on_pass=on_pass) for _, work, _ in todo)
        else:
            probed = sharding.map(probe_work, [work for _, work, _ in todo])
        for (k, work, layout), piece in zip(todo, probed):
            if sharding.path is not None and not piece.failures:  # a failed score is never kept as a finished one
                save_shard(sharding.path(k), piece, layout)
            if sharding.map is not None:
                passes_of(work)
            kept[k] = piece
        ordered = [kept[k] for k in sorted(kept)]
        if len(ranges) == 1:
            return ordered
        return [self._settled(ordered[start:start + len(ranges)]) for start in range(0, len(ordered), len(ranges))]

    def _probe_work(self, work: ShardWork, model: nn.Module,
                    checkpoints: Sequence[tuple[Checkpoint, dict[str, torch.Tensor]]], folds: Folds | None,
                    on_pass: Callable[[], None] | None = None) -> Shard:
        """``shard`` of one ``ShardWork``: what ``Sharding.map`` runs on a worker."""
        return self.shard(work.rows, model, checkpoints, on_pass, folds, work.checkpoints)

    def _settled(self, pieces: list[Shard]) -> Shard:
        """The shard of a range of examples from the shards of its consecutive ranges of checkpoints: each host's
        running states merged over the ranges by each reduction's merge (``Host.settle``), then reduced."""
        failures = {spec: error for piece in pieces for spec, error in piece.failures.items()}
        partials: dict[str, dict[int, Any]] = {}
        for name in pieces[-1].predictions:  # the last range's: every split the examples' range holds
            for position, host in enumerate(self.hosts):
                if any(spec in failures or spec in self.failures for spec in host.specs):
                    continue
                parts = [piece.partials.get(name, {}).get(position, {}) for piece in pieces]
                try:
                    partials.setdefault(name, {})[position] = host.settle(name, parts)
                except Exception as error:  # the host's scorers fail alone, as in ``_guard``
                    failures.update(dict.fromkeys(host.specs, f"{type(error).__name__}: {error} (merging the ranges "
                                                              "of checkpoints)"))
        seconds: dict[str, float] = {}
        for piece in pieces:
            for spec, value in piece.seconds.items():
                seconds[spec] = seconds.get(spec, 0.0) + value
        peak = {spec: max(piece.peak_bytes.get(spec, 0) for piece in pieces)
                for spec in {spec for piece in pieces for spec in piece.peak_bytes}}
        return Shard(partials, pieces[-1].predictions, failures, seconds, peak)

    def _resolve(self, schedule: list[Checkpoint]) -> None:
        """What each scorer observes, lacks and needs, asked once; the hosts of the scorers to compute."""
        for scorer in self.scorers:  # the reused too: the unit's meta lists the epochs each one observed
            observed = self._guard([scorer.spec], observed_checkpoints, scorer, schedule)
            self.observed[scorer.spec] = frozenset() if observed is None else observed
        for scorer in self.todo:  # needs that name no signal fail their scorer alone
            self._guard([scorer.spec], needs_of, scorer)
            if reason := self._guard([scorer.spec], scorer.lacking, schedule, self.observed[scorer.spec]):
                self.skipped[scorer.spec] = reason
        self.hosts = make_hosts(self._active(), self.observed, self.state_dtype)

    def _active(self) -> list[Scorer]:
        return [s for s in self.todo if s.spec not in self.failures and s.spec not in self.skipped]

    def _probe(self, model: nn.Module, checkpoints: Sequence[tuple[Checkpoint, dict[str, torch.Tensor]]],
               on_pass: Callable[[], None] | None, folds: Folds | None, end: bool,
               within: tuple[int, int] | None = None) -> None:
        """Every split's passes at the checkpoints ``within`` (first, stop; None: all); then each host ends the split,
        or (``end`` False, in a shard) hands back its part (``partial``), or its state (``ranged``, ``within`` set)."""
        first, stop = within or (0, len(checkpoints))
        if stop == len(checkpoints):  # the held-out logits serve the last checkpoint alone
            self._heldout_logits(model, folds, checkpoints[-1][0].index)
        self._final_classes(model, checkpoints[-1][1])
        for name, split in self.splits.items():
            for host in self._alive():
                self._guard(host.specs, host.start, name, len(split))
            for checkpoint, state in checkpoints[first:stop]:
                model.load_state_dict(state)
                self._pass(model, name, checkpoint)
                if on_pass is not None:
                    on_pass()
            alive = self._alive()
            for position, host in enumerate(self.hosts):
                if host in alive:
                    self._keep_peak_bytes(host)
                    if end:
                        self._guard(host.specs, host.end, name)
                    else:
                        hand_back = host.partial if within is None else host.ranged
                        self.partials.setdefault(name, {})[position] = self._guard(host.specs, hand_back, name)

    def shard(self, rows: dict[str, np.ndarray], model: nn.Module,
              checkpoints: Sequence[tuple[Checkpoint, dict[str, torch.Tensor]]],
              on_pass: Callable[[], None] | None = None, folds: Folds | None = None,
              within: tuple[int, int] | None = None) -> Shard:
        """The probe of the examples at ``rows`` of each split (sorted positions; a split without rows is left out),
        its hosts' parts handed back rather than ended, for ``join``; with ``within`` (first, stop), at those
        checkpoints alone, their running states handed back, for ``_settled``. The scorers' observed checkpoints,
        skips and failures are this probe's, resolved once; each shard makes hosts of its own."""
        piece = Probe({name: self.splits[name].sample(index) for name, index in rows.items() if len(index)},
                      self.todo, self.input_shape, self.batch_size, None, self.state_dtype)
        piece.observed, piece.skipped, piece.failures = dict(self.observed), dict(self.skipped), dict(self.failures)
        # the hosts of this probe's, in its order: a shard's parts are joined by position
        piece.hosts = make_hosts([s for host in self.hosts for s in host.scorers], piece.observed, self.state_dtype)
        if folds is not None and "train" in rows:
            folds = Folds(folds.fold[rows["train"]], folds.states)
        with evaluating(model):
            piece._probe(model, checkpoints, on_pass, folds, end=False, within=within)
        piece.meter.settle()
        failed_here = {spec: error for spec, error in piece.failures.items() if spec not in self.failures}
        return Shard(piece.partials, piece.predictions, failed_here, dict(piece.meter.seconds), piece.peak_bytes)

    def join(self, pieces: list[Shard]) -> None:
        """``pieces`` (``shard``s of consecutive ranges of every split, in order) put end to end in this probe's hosts
        in place of their ``end``; a scorer that failed in any piece fails. Seconds add up; state bytes are the
        largest a piece held."""
        for piece in pieces:
            self.failures.update(piece.failures)
            for spec, seconds in piece.seconds.items():
                self.meter.seconds[spec] += seconds
            for spec, size in piece.peak_bytes.items():
                self.peak_bytes[spec] = max(self.peak_bytes.get(spec, 0), size)
        positions = {id(host): position for position, host in enumerate(self.hosts)}
        for name in self.splits:
            covering = [piece for piece in pieces if name in piece.predictions]
            for host in self._alive():
                parts = [piece.partials[name][positions[id(host)]] for piece in covering]
                self._guard(host.specs, host.join, name, parts)
            self.predictions[name] = np.concatenate([piece.predictions[name] for piece in covering])

    def _final_classes(self, model: nn.Module, final_state: dict[str, torch.Tensor]) -> None:
        """Each split's labels where trusted, otherwise the class the final model predicts; only if a signal asks."""
        users = [spec for host in self._alive() for spec in host.specs
                 if any(signal.cls == "final" for signal in host.scorer_needs[spec])]
        if not users:
            return
        self.meter.restart()
        model.load_state_dict(final_state)
        with torch.no_grad():
            for name, split in self.splits.items():
                self.final_classes[name] = split.labels if split.trusted_labels else torch.cat([
                    model(model_input(split.inputs[start:start + self.batch_size], self.input_shape)).argmax(1)
                    for start in range(0, len(split), self.batch_size)
                ])
        self.meter.lap(users)
        self.meter.settle()

    def _heldout_logits(self, model: nn.Module, folds: Folds | None, last: int) -> None:
        """The training split's ``heldout_logits``: each fold through the model trained without it; only if a scorer
        asks. One that asks without folds, or before the last checkpoint, fails alone."""
        def refuse(observed: frozenset[int]) -> None:
            if folds is None:
                raise ValueError(NO_FOLDS)
            if observed - {last}:
                raise ValueError("heldout_logits is given at the last checkpoint only (it is the final models' "
                                 "logits); observe checkpoint.is_last alone")
            if "train" in self.splits and (problem := folds.problem(len(self.splits["train"]))):
                raise ValueError(problem)

        for host in self._alive():
            if HELDOUT_LOGITS in host.needs:
                self._guard(host.specs, refuse, host.observed)
        users = [spec for host in self._alive() if HELDOUT_LOGITS in host.needs for spec in host.specs]
        if not users or folds is None or "train" not in self.splits:
            return
        self.meter.restart()
        split = self.splits["train"]
        fold = torch.as_tensor(folds.fold, device=split.labels.device)
        logits = torch.empty(len(split), model.head.out_features, device=split.labels.device)
        with torch.no_grad():
            for k, state in enumerate(folds.states):
                model.load_state_dict(state)
                members = torch.nonzero(fold == k).flatten()
                for start in range(0, len(members), self.batch_size):
                    index = members[start:start + self.batch_size]
                    logits[index] = model.head(model.embed(model_input(split.inputs[index], self.input_shape)))
        self.heldout["train"] = logits
        self.meter.lap(users)
        self.meter.settle()

    def _pass(self, model: nn.Module, name: str, checkpoint: Checkpoint) -> None:
        """One pass over split ``name`` at ``checkpoint``: the signals its observers need, batch by batch, fed to them."""
        active = [host for host in self._alive() if checkpoint.index in host.observed]
        if not active and not checkpoint.is_last:
            return
        needed = frozenset().union(*(host.needs for host in active))
        scorer_needs = [(spec, needs) for host in active for spec, needs in host.scorer_needs.items()]
        payers = {signal: [spec for spec, needs in scorer_needs  # the forward pass serves all but pixel-only scorers
                           if signal in needs or (signal == LOGITS and needs - {PIXELS})] for signal in needed | {LOGITS}}

        def charge(signal: Signal) -> None:
            self.meter.lap(payers[signal])

        split = self.splits[name]
        predictions = []
        for start in range(0, len(split), self.batch_size):
            self.meter.restart()
            index = torch.arange(start, min(start + self.batch_size, len(split)), device=split.labels.device)
            classes = {"label": split.labels[index]}
            if split.trusted_labels:
                classes["target"] = classes["label"]
            if name in self.final_classes:
                classes["final"] = self.final_classes[name][index]
            signals, classes = compute_signals(model, model_input(split.inputs[index], self.input_shape), classes,
                                               needed, self.grad_norms, charge)
            if HELDOUT_LOGITS in needed:  # its observers see the last checkpoint alone: elsewhere the final model's
                signals[HELDOUT_LOGITS] = self.heldout[name][index] if name in self.heldout else signals[LOGITS]
            batch = Batch(split=name, index=index, classes=classes, signals=signals, head=model.head,
                          checkpoint=checkpoint)
            for host in active:
                self._guard(host.specs, host.update, batch, checkpoint)
            if checkpoint.is_last:
                predictions.append(signals[LOGITS].argmax(1).cpu())
        if checkpoint.is_last:
            self.predictions[name] = torch.cat(predictions).numpy()
        self.meter.settle()

    def _table(self) -> dict[str, dict[str, np.ndarray]]:
        """The score table: per split, id, label, pred, noisy and one column per scorer that did not fail."""
        scores: dict[str, dict[str, np.ndarray]] = dict(self.known)  # scorer spec -> split -> scores
        for host in self._alive():
            for scorer in host.scorers:
                for name in self.splits:
                    self._collect(scores, host, scorer, name)
            self._keep_peak_bytes(host)
        table = {}
        for name, split in self.splits.items():
            n = len(split)
            table[name] = {
                "id": np.arange(n) if split.ids is None else split.ids,
                "label": split.labels.cpu().numpy(),
                "pred": self.predictions[name],
                "noisy": split.noisy if split.noisy is not None else np.zeros(n, dtype=bool),
            }
            table[name].update({s.spec: scores[s.spec][name] for s in self.scorers
                                if s.spec not in self.failures and s.spec not in self.skipped})
        return table

    def _collect(self, scores: dict, host: Host, scorer: Scorer, name: str) -> None:
        """Score one split and keep the result if it is one float per example."""
        result = self._guard([scorer.spec], host.scores, scorer, name)
        if scorer.spec in self.failures:
            return
        result = np.asarray(result, dtype=np.float64)
        expected = (len(self.splits[name]),)
        if result.shape != expected:
            self.failures[scorer.spec] = f"returned scores of shape {result.shape} for split {name!r}; expected {expected}"
            return
        scores.setdefault(scorer.spec, {})[name] = result


def checkpoint_ranges(checkpoints: int, shards: int) -> list[tuple[int, int]]:
    """``shards`` consecutive ranges (first, stop) of ``checkpoints`` indices, as equal as they can be (no more
    ranges than checkpoints)."""
    bounds = np.linspace(0, checkpoints, min(shards, checkpoints) + 1).round().astype(int)
    return [(int(first), int(stop)) for first, stop in zip(bounds[:-1], bounds[1:])]


def example_ranges(sizes: dict[str, int], shards: int, batch_size: int) -> list[dict[str, np.ndarray]]:
    """``shards`` cuts of every split (name -> size) into consecutive ranges of whole probe batches, as equal in
    batches as they can be: the positions of each shard's examples, by split (empty for a split of fewer batches than
    shards). Cut at batch boundaries, every example is probed in the batch the unsharded probe puts it in."""
    pieces: list[dict[str, np.ndarray]] = [{} for _ in range(shards)]
    for name, size in sizes.items():
        for piece, batches in zip(pieces, np.array_split(np.arange(-(-size // batch_size)), shards)):
            piece[name] = np.arange(batches[0] * batch_size, min(size, (batches[-1] + 1) * batch_size)) \
                if len(batches) else np.arange(0)
    return pieces
