"""The running state of a ``CheckpointScore``, kept by the harness: one ``Accumulator`` per
reduction and split (``bench.hosts.CheckpointHost`` holds them for the variants sharing a state).

Each batch's values are folded in with the examples' positions in the split; when a split
has been seen at every checkpoint, its reduced values are kept and the running state freed. States
live on the device, float64 for sums and moments (float32 on request, halving the state
of per-pixel scores), and do not grow with the checkpoints (the std is Welford's update). A state whose arrays
would take more than ``MEMORY_SHARE`` of the memory available on its device when it is made (VoG's, per pixel, on
a large split) lives in a temporary file instead, mapped into host memory (``disk_zeros``): the same arithmetic, in
pages the kernel moves to and from disk. ``bench.api.REDUCTIONS`` says what each one computes
and how two states merge: ``merged`` joins the states of consecutive ranges of checkpoints (the std by Chan et
al.'s pairwise update). No reduction mixes examples: the states, and the reduced values, of consecutive ranges of
examples are put end to end (``bench.probe``'s shards).

Welford's update in float32 (unit roundoff u = 2^-24) over k values of largest magnitude M gives
each element's variance to within eps = (4k + 12) u M^2 (to first order in u: the running mean
is off by at most (k - 1 + 4 (H_k - 1)) u M, and each of the k steps of the second moment adds
at most its factors' errors times 2M, plus its own rounding); its std is then off by at most
min(eps / std, sqrt(eps)) + u std, and a mean of stds (VoG) by the mean of those bounds. The
bound is loose (about 1,000 times the differences seen, tests/test_reductions.py) but shows where
float32 falls short: an element whose values barely move against their size (std much below M),
where a score can move in its third significant digit; on gradient-like values that move by a
tenth of their size or more, scores agree to a millionth and rank alike. Hence float64 by default.
"""

from __future__ import annotations

import math
import tempfile

import numpy as np
import psutil
import torch

# A state goes to a file on disk when its arrays would take more than this share of the memory available on its
# device when it is made (``available_memory``); the rest is left to the model, the batch and the other states.
MEMORY_SHARE = 0.5
RESULT_CHUNK = 64 * 2**20  # bytes of a std's second moment reduced at once


def available_memory(device: torch.device) -> int:
    """Bytes that can be had now without swapping: the host's for the CPU, the device's free memory otherwise."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return psutil.virtual_memory().available


def disk_zeros(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A tensor of zeros in a temporary file mapped into host memory: the kernel pages it to and from disk, so it
    may exceed the memory. The file has no name (``tempfile.TemporaryFile``, under ``TMPDIR``), so nothing is left
    behind, even by a killed process; its space is freed with the tensor."""
    with tempfile.TemporaryFile(prefix="bench-state-") as file:
        array = np.memmap(file, dtype=torch.empty((), dtype=dtype).numpy().dtype, mode="w+", shape=shape)
    return torch.from_numpy(array)


def _rows(index: torch.Tensor) -> slice | torch.Tensor:
    """``index`` as a slice where it is a run of consecutive positions on the CPU (the probe's batches), so that
    the state is updated in place rather than its rows gathered and scattered back (VoG's update in 0.35-0.6 of
    the time, ``python -m benchmarks vog-update``); else as it is (a device's index is not read: that would wait
    for the device)."""
    if index.device.type == "cpu" and len(index) > 0 and bool((index.diff() == 1).all()):
        start = int(index[0])
        return slice(start, start + len(index))
    return index


class Accumulator:
    """One reduction (a key of ``bench.api.REDUCTIONS``) over a split of ``size`` examples."""

    def __init__(self, reduction: str, size: int, dtype: torch.dtype = torch.float64) -> None:
        self.reduction = reduction
        self.size = size
        self.dtype = dtype  # of sums and moments
        self.seen: set[int] = set()  # checkpoint indices observed
        self.state: dict[str, torch.Tensor] = {}
        self.on_disk: bool | None = None  # whether the state is in a file; None: not made yet

    def _zeros(self, name: str, like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        if name not in self.state:
            shape = (self.size, *like.shape[1:])
            self.state[name] = disk_zeros(shape, dtype) if self.on_disk else \
                torch.zeros(shape, dtype=dtype, device=like.device)
        return self.state[name]

    def _too_large(self, index: torch.Tensor, value: torch.Tensor | None) -> bool:
        """Whether the state, made for values like ``value``, would take more than ``MEMORY_SHARE`` of the memory
        available on their device: decided at the first update, for all of the state's arrays."""
        like = index if value is None else value
        moments = self.reduction in ("sum", "mean", "std")
        value_bytes = torch.empty((), dtype=self.dtype).element_size() if moments else like.element_size()
        needed = (2 if self.reduction == "std" else 1) * self.size * math.prod(like.shape[1:]) * value_bytes
        return needed > MEMORY_SHARE * available_memory(like.device)

    def update(self, index: torch.Tensor, value: torch.Tensor | None, checkpoint: int) -> None:
        """Fold the values of the examples at ``index`` at checkpoint ``checkpoint`` into the state."""
        self.seen.add(checkpoint)
        if self.on_disk is None:
            self.on_disk = self._too_large(index, value)
        if self.on_disk:  # a state on disk is in host memory: the values come to it
            index, value = index.cpu(), None if value is None else value.cpu()
        rows = _rows(index)
        if self.reduction == "count":
            self._zeros("count", index, torch.int64)[rows] += 1
        elif self.reduction in ("sum", "mean"):
            self._zeros("sum", value, self.dtype)[rows] += value.to(self.dtype)
        elif self.reduction == "std":
            value = value.flatten(1).to(self.dtype) if value.ndim > 1 else value.to(self.dtype)[:, None]
            state_mean, state_m2 = self._zeros("mean", value, self.dtype), self._zeros("m2", value, self.dtype)
            mean, m2 = state_mean[rows], state_m2[rows]  # views of the state for a slice, else copies
            delta = value - mean
            mean += delta / len(self.seen)
            m2 += delta * (value - mean)
            if not isinstance(rows, slice):
                state_mean[rows], state_m2[rows] = mean, m2
        elif self.reduction == "last":
            self._zeros("last", value, value.dtype)[index] = value
        elif self.reduction == "transitions":
            previous, value = self._zeros("previous", value, torch.bool), value.bool()
            self._zeros("events", value, torch.int64)[index] += previous[index] & ~value
            previous[index] = value
            if len(self.seen) == 1:  # the first value, for a merge with an earlier range (``merged``)
                self._zeros("first", value, torch.bool)[index] = value
        elif self.reduction == "any":
            self._zeros("any", value, torch.bool)[index] |= value.bool()
        else:
            raise ValueError(f"unknown reduction {self.reduction!r}")

    def result(self) -> np.ndarray:
        """The reduced value of every example of the split."""
        if not self.seen:
            raise ValueError("observed no checkpoint; check its parameters against the checkpoint schedule")
        state = self.state
        if self.reduction == "mean":
            return (state["sum"] / len(self.seen)).cpu().numpy()
        if self.reduction == "std":  # a chunk of rows at a time: the temporaries stay small, whatever the split
            m2 = state["m2"]
            step = max(1, RESULT_CHUNK // max(1, math.prod(m2.shape[1:]) * m2.element_size()))
            return np.concatenate([(m2[start:start + step] / len(self.seen)).sqrt().mean(dim=1, dtype=torch.float64)
                                   .cpu().numpy() for start in range(0, len(m2), step)])
        name = {"transitions": "events"}.get(self.reduction, self.reduction)
        return state[name].cpu().numpy()



def merged(earlier: Accumulator, later: Accumulator) -> Accumulator:
    """The state of ``earlier``'s checkpoints followed by ``later``'s, for the same examples: each reduction's merge
    (``bench.api.REDUCTIONS``). Exact for counts, ``any``, ``last`` and ``transitions``; sums and moments equal the
    whole's to rounding, as their additions come in another order."""
    if (earlier.reduction, earlier.size, earlier.dtype) != (later.reduction, later.size, later.dtype):
        raise ValueError(f"cannot merge a {earlier.reduction} state of {earlier.size} examples in {earlier.dtype} with "
                         f"a {later.reduction} state of {later.size} in {later.dtype}")
    if not earlier.seen or not later.seen or max(earlier.seen) >= min(later.seen):
        raise ValueError(f"cannot merge checkpoints {sorted(earlier.seen)} with {sorted(later.seen)}: the first "
                         "range must end before the second begins, and neither be empty")
    whole = Accumulator(earlier.reduction, earlier.size, earlier.dtype)
    whole.seen = earlier.seen | later.seen
    a, b = earlier.state, later.state
    if earlier.reduction == "std":
        n_a, n_b = len(earlier.seen), len(later.seen)
        delta = b["mean"] - a["mean"]
        whole.state = {"mean": a["mean"] + delta * (n_b / (n_a + n_b)),
                       "m2": a["m2"] + b["m2"] + delta.square() * (n_a * n_b / (n_a + n_b))}
    elif earlier.reduction == "last":
        whole.state = {"last": b["last"]}
    elif earlier.reduction == "transitions":
        whole.state = {"events": a["events"] + b["events"] + (a["previous"] & ~b["first"]),
                       "previous": b["previous"], "first": a["first"]}
    elif earlier.reduction == "any":
        whole.state = {"any": a["any"] | b["any"]}
    else:  # count, sum, mean
        whole.state = {name: a[name] + b[name] for name in a}
    return whole

