"""VoG's memory against the number of checkpoints, and against storing every gradient map.

Each measurement runs in a fresh process (peak resident memory is per process): a LeNet-5 is
probed at K checkpoints with VoG alone over the same images. The harness keeps a running
mean and variance per pixel, so memory should not grow with K; the official code writes every
gradient map of every checkpoint, K x N x pixels float32 values.
"""

from __future__ import annotations

import subprocess
import sys

from benchmarks.common import report

N = 10_000
PIXELS = 28 * 28
CHILD = """
import sys
from bench.api import Checkpoint
from bench.probe import Probe, ProbeSplit
from benchmarks.common import INPUT_SHAPE, lenet_and_data, peak_resident_bytes
from scorers.vog import VoG
checkpoints, n = int(sys.argv[1]), int(sys.argv[2])
model, images, labels = lenet_and_data(n)
vog = VoG(window="all", target="logit")  # every checkpoint observed
probe = Probe({"train": ProbeSplit(images, labels, trusted_labels=True)}, [vog], INPUT_SHAPE)
state = model.state_dict()
table = probe.run(model, [(Checkpoint(index=k, epoch=k + 1, total=checkpoints), state) for k in range(checkpoints)])
assert table["train"]["vog[window=all,target=logit]"].shape == (n,)
print(peak_resident_bytes() // 1024)
"""


def peak_megabytes(checkpoints: int) -> float:
    """Peak resident memory of a process that probes ``checkpoints`` times, in MB."""
    result = subprocess.run([sys.executable, "-c", CHILD, str(checkpoints), str(N)],
                            capture_output=True, text=True, check=True)
    return int(result.stdout.split()[-1]) / 1024


def run() -> None:
    few, many = peak_megabytes(3), peak_megabytes(30)
    state = 2 * N * PIXELS * 8 / 2**20  # Welford mean and M2, float64
    stored = 30 * N * PIXELS * 4 / 2**20  # every gradient map of 30 checkpoints, float32
    report("VoG memory", many / few, "at most 1.1: independent of the number of checkpoints", {
        "examples": f"{N} MNIST-sized images, LeNet-5, VoG alone",
        "peak memory, 3 checkpoints": f"{few:.0f} MB",
        "peak memory, 30 checkpoints": f"{many:.0f} MB",
        "VoG running state (mean and M2, float64)": f"{state:.0f} MB",
        "every gradient map of 30 checkpoints, as the official code stores them": f"{stored:.0f} MB "
                                                                                  f"({stored / state:.1f}x the running state)",
    })
