"""What a running state on disk costs: VoG's probe with its state in a temporary file against in memory.

One process: poolnet (random weights, 3 checkpoints made by perturbing them) over ``N`` random CIFAR-shaped images,
``vog`` alone, its state (a mean and a second moment per pixel, float64) in memory, then in a file mapped into
memory (``bench.reductions.disk_zeros``), as the harness puts it when it would take more than ``MEMORY_SHARE`` of
the memory available: forced here by reporting no memory available. Best of 2, taking turns; the scores must be
equal. The file fits this machine's page cache, so this is the cost of the mapping and of writing the file back,
not of a disk read per batch: a state far larger than the memory runs at the disk's pace.
"""

from __future__ import annotations

from unittest import mock

import numpy as np

from bench import reductions, registry
from bench.probe import Probe, ProbeSplit
from benchmarks.common import CIFAR_SHAPE, best_times, perturbed_checkpoints, report, resnet_and_data, sized

N, TINY_N = 4096, 64


def run() -> None:
    n = sized(N, TINY_N)
    model, images, labels = resnet_and_data(n, "poolnet")
    states = perturbed_checkpoints(model, 3)
    tables = {}

    def probe(where: str) -> None:
        split = ProbeSplit(images, labels, trusted_labels=False)
        with mock.patch.object(reductions, "available_memory", lambda device: 0 if where == "disk" else 2**62):
            tables[where] = Probe({"test": split}, [registry.create("vog")], CIFAR_SHAPE).run(model, states)

    seconds = best_times({"memory": lambda: probe("memory"), "disk": lambda: probe("disk")}, repeat=2)
    equal = np.array_equal(tables["memory"]["test"]["vog"], tables["disk"]["test"]["vog"])
    report("VoG state on disk", seconds["disk"] / seconds["memory"], "near 1 while the file fits the page cache", {
        "work": f"poolnet, 3 checkpoints, {n} random CIFAR-shaped images, vog alone (state "
                f"{2 * n * CIFAR_SHAPE[1] * CIFAR_SHAPE[2] * 8 / 2**20:.0f} MiB); best of 2, taking turns",
        "state in memory": f"{seconds['memory']:.2f} s",
        "state on disk": f"{seconds['disk']:.2f} s",
        "scores equal": "yes" if equal else "NO",
    })
