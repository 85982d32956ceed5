"""Generating the colour corruptions of a 10,000-image test set: time per corruption and peak memory.

Runs in a fresh process (peak resident memory is per process): the ``patches`` test images
tiled to 10,000, corrupted by every corruption at its 5 severities (the variant a CIFAR-10
run generates without the official CIFAR-10-C files) and written to a temporary folder.
Memory is compared with what the variant writes and with the clean images.
"""

from __future__ import annotations

import json
import subprocess
import sys

from benchmarks.common import report

N = 10_000
CHILD = """
import json, sys, tempfile, time
from pathlib import Path
import numpy as np
from bench.data import Split, load_dataset
from bench.data import corrupted
from bench.data.colour import COLOUR_CORRUPTIONS
from benchmarks.common import peak_resident_bytes

n = int(sys.argv[1])
test = load_dataset("patches").test
inputs = np.resize(test.inputs, (n, *test.inputs.shape[1:]))
split = Split(inputs, np.resize(test.labels, n))
seconds = {}
original = corrupted.corrupt_colour

def timed(images, name, *args):
    started = time.perf_counter()
    result = original(images, name, *args)
    seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started
    return result

corrupted.corrupt_colour = timed
with tempfile.TemporaryDirectory() as tmp:
    corrupted.build_colour_corrupted(Path(tmp) / "bench-c", split, progress=False)
    written = sum(f.stat().st_size for f in (Path(tmp) / "bench-c").iterdir())
print(json.dumps({"seconds": seconds, "peak": peak_resident_bytes(),
                  "written": written, "clean": inputs.nbytes}))
"""


def run() -> None:
    result = json.loads(subprocess.run([sys.executable, "-c", CHILD, str(N)], capture_output=True, text=True,
                                       check=True).stdout.splitlines()[-1])
    seconds, total = result["seconds"], sum(result["seconds"].values())
    slowest = sorted(seconds.items(), key=lambda item: -item[1])
    report("colour corruptions", result["peak"] / result["written"], "peak memory at most what is written plus a batch", {
        "images": f"{N} colour 32x32 images, {len(seconds)} corruptions x 5 severities",
        "time": f"{total:.0f} s in all; slowest: " + ", ".join(f"{name} {s:.0f} s" for name, s in slowest[:4]),
        "peak resident memory": f"{result['peak'] / 2**20:.0f} MB",
        "written": f"{result['written'] / 2**20:.0f} MB (clean images: {result['clean'] / 2**20:.0f} MB)",
    })
