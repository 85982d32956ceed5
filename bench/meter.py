"""What scoring costs: seconds charged to the scorers that used them, and the bytes of their states.

The ``Meter`` cuts the device's timeline into consecutive spans, each charged to the scorers
it served (divided equally among them). On CUDA a span's ends are events recorded on the
stream, so nothing waits while the probe runs; ``settle`` synchronises the device once (the
probe calls it once per pass) and turns the spans into seconds. The spans tile the timeline:
work a scorer queues is charged to it when the device runs it, and no second is counted
twice. On the CPU the ends are ``time.perf_counter`` readings.
"""

from __future__ import annotations

import io
import pickle
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import torch


class Meter:
    """Seconds per scorer spec, from spans of the timeline charged as they end (``lap``) and counted by ``settle``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.seconds: dict[str, float] = defaultdict(float)  # spec -> seconds settled
        self._spans: list[tuple[Sequence[str], Any, Any]] = []  # (specs charged, start mark, end mark)
        self._last: Any = None

    def now(self) -> Any:
        """A mark on the device's timeline: a recorded CUDA event, or the CPU's clock."""
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record(torch.cuda.current_stream(self.device))
        return event

    def restart(self) -> None:
        """Start a span here; the time since the last mark is charged to nobody."""
        self._last = self.now()

    def lap(self, specs: Sequence[str]) -> None:
        """Charge the span since the last mark to ``specs`` (nobody if empty), and start the next one."""
        end = self.now()
        if specs:
            self._spans.append((specs, self._last, end))
        self._last = end

    def settle(self) -> None:
        """Wait for the device once, and add the seconds of every span ended so far to the scorers charged."""
        if self.cuda and self._spans:
            torch.cuda.synchronize(self.device)
        for specs, start, end in self._spans:
            seconds = start.elapsed_time(end) / 1000 if self.cuda else end - start
            for spec in specs:
                self.seconds[spec] += seconds / len(specs)
        self._spans.clear()


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


def tensor_bytes(tensors: Sequence[torch.Tensor]) -> int:
    return sum(t.nelement() * t.element_size() for t in tensors)
