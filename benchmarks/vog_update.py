"""VoG's running state (the ``std`` reduction, Welford's update): batches of consecutive examples, as the probe
gives them, updated in place, against the same batches' positions shuffled (rows gathered and scattered back,
the general case); and the in-place update in float32 (config key ``state_dtype``) against float64.

``N`` gradient-like 28 x 28 maps at each of ``CHECKPOINTS`` checkpoints, in the probe's batches of 256.
"""

from __future__ import annotations

import torch

from bench.reductions import Accumulator
from benchmarks.common import best_times, report, sized

N = 16384
CHECKPOINTS = 10
BATCH = 256


def run() -> None:
    n = sized(N, 512)
    generator = torch.Generator().manual_seed(0)
    maps = [torch.randn(n, 28, 28, generator=generator) * (1 + 0.3 * t) + 0.5 for t in range(CHECKPOINTS)]
    shuffled = torch.randperm(n, generator=generator)

    def updated(dtype: torch.dtype, positions: torch.Tensor) -> Accumulator:
        state = Accumulator("std", n, dtype)
        for checkpoint, values in enumerate(maps):
            for start in range(0, n, BATCH):
                index = positions[start:start + BATCH]
                state.update(index, values[index], checkpoint)
        return state

    in_order = torch.arange(n)
    seconds = best_times({"in place": lambda: updated(torch.float64, in_order),
                          "gathered": lambda: updated(torch.float64, shuffled),
                          "float32": lambda: updated(torch.float32, in_order)})
    same = torch.equal(updated(torch.float64, in_order).state["m2"], updated(torch.float64, shuffled).state["m2"])
    per_update = {key: value / n / CHECKPOINTS * 1e6 for key, value in seconds.items()}
    report("VoG's running state", seconds["in place"] / seconds["gathered"], "below 1", {
        "examples": f"{n} maps of 28 x 28 at {CHECKPOINTS} checkpoints, batches of {BATCH}",
        "in place (consecutive batches, float64)": f"{seconds['in place']:.2f} s ({per_update['in place']:.1f} us "
                                                   "per example and checkpoint)",
        "gathered and scattered (shuffled batches, float64)": f"{seconds['gathered']:.2f} s "
                                                              f"({per_update['gathered']:.1f} us)",
        "the two states bit-identical": str(same),
        "in place in float32 / in float64": f"{seconds['float32'] / seconds['in place']:.2f} "
                                            f"({per_update['float32']:.1f} us)",
        "threads": str(torch.get_num_threads()),
    })
