"""The sharded probe on 1 and 2 workers of this machine: the speed-up of spreading one unit's probe.

One probe: poolnet (random weights, ``CHECKPOINTS`` checkpoints made by perturbing them) over ``N`` random
CIFAR-shaped images, scored by ``vog`` (an input gradient at every checkpoint) and ``loss``, cut into 2 shards
that run as Ray tasks (``bench.executors.ray_shards``), each with one CPU thread. On a local Ray instance of 1 CPU
the two shards run one after the other (1 worker); of 2 CPUs, side by side (2 workers). The ratio is the 1-worker
time over the 2-worker time: 2 at best. Both tables must be equal, value for value. Ray's start is not timed; the
transfer of the probe, model and checkpoints to the workers is.
"""

from __future__ import annotations

import functools
import time

import numpy as np
import torch

from bench import registry
from bench.executors import ray_shards
from bench.probe import Probe, ProbeSplit, Sharding
from benchmarks.common import perturbed_checkpoints, report, resnet_and_data, sized

N, TINY_N = 2048, 128
CHECKPOINTS = 4
REPEAT = 2


def probe_on(workers: int, model: torch.nn.Module, split: ProbeSplit, states: list) -> tuple[float, dict]:
    """The best of ``REPEAT`` times of the sharded probe on a Ray instance of ``workers`` CPUs, and its table."""
    import ray

    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        best, table = float("inf"), {}
        for _ in range(REPEAT):
            probe = Probe({"test": split}, [registry.create("vog"), registry.create("loss")], (3, 32, 32),
                          batch_size=sized(256, 64))
            started = time.perf_counter()
            table = probe.run(model, states, sharding=Sharding(2, None, functools.partial(ray_shards, threads=1,
                                                                                            gpus=0)))
            best = min(best, time.perf_counter() - started)
        return best, table
    finally:
        ray.shutdown()


def run() -> None:
    n = sized(N, TINY_N)
    model, images, labels = resnet_and_data(n, "poolnet")
    split = ProbeSplit(images, labels, trusted_labels=False)
    states = perturbed_checkpoints(model, CHECKPOINTS)
    one, first = probe_on(1, model, split, states)
    two, second = probe_on(2, model, split, states)
    equal = all(np.array_equal(first["test"][column], second["test"][column]) for column in first["test"])
    report("sharded probe, 2 workers", one / two, "above 1; 2 at best", {
        "work": f"poolnet, {CHECKPOINTS} checkpoints, {n} random CIFAR-shaped images, vog and loss, 2 shards as Ray "
                "tasks of 1 CPU thread each",
        "1 worker": f"{one:.3f} s",
        "2 workers": f"{two:.3f} s",
        "tables equal": "yes" if equal else "NO",
        "timing": f"best of {REPEAT} each, Ray's start not timed",
    })
