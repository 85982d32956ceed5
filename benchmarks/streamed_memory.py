"""Data larger than memory: the probe's peak resident memory over ``N`` and ``4 N`` examples of an ``npy:`` folder.

Each measure runs in a fresh process: an MLP (random weights, 2 checkpoints) probes the test split of a folder of
random 3x64x64 uint8 images (12 KiB each) with ``loss`` and ``max-softmax``, whose states are 8 bytes an example.
Its figure is the peak resident memory above what the process held before it loaded the dataset, so the loading
(the content digest, read a chunk at a time) is counted with the probe. glibc's malloc is given a fixed mapping
threshold (``benchmarks.common.FIXED_MALLOC``), so that freed batches leave the process at once. Streamed (``npy:``, read a batch at a time
from the files) the peak should not grow with the examples: ratio 4N / N near 1. The same arrays read into memory
(``numpy.load`` without ``mmap_mode``, as an npz is) are the baseline, whose peak grows with them by about 4.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import child_json, report, sized

N, TINY_N = 8192, 256
SHAPE = (3, 64, 64)
WRITE_CHUNK = 1024  # images written at once

CHILD = """
import json, sys
import numpy as np, torch
from bench import registry
from bench.api import Checkpoint
from bench.data import load_dataset
from bench.models import MLP
from bench.probe import Probe, ProbeSplit
from bench.training import device_inputs
from benchmarks.common import peak_resident_bytes, resident_bytes

folder, streamed = sys.argv[1], sys.argv[2] == "streamed"
torch.manual_seed(0)
model = MLP((3, 64, 64), 10)
states = [(Checkpoint(index=k, epoch=k, total=2), {name: value + 0.01 * k for name, value in model.state_dict().items()})
          for k in range(2)]
scorers = [registry.create(spec) for spec in ("loss", "max-softmax")]
before = resident_bytes()
if streamed:
    test = load_dataset(f"npy:{folder}").test
    inputs, labels = test.inputs, test.labels
else:
    inputs, labels = np.load(f"{folder}/x_test.npy"), np.load(f"{folder}/y_test.npy")
split = ProbeSplit(device_inputs(inputs, torch.device("cpu")), torch.as_tensor(labels), trusted_labels=False)
table = Probe({"test": split}, scorers, (3, 64, 64)).run(model, states)
peak = peak_resident_bytes()
print(json.dumps({"before": before, "peak": peak, "kind": type(split.inputs).__name__, "rows": len(table["test"]["loss"])}))
"""


def write_folder(folder: Path, n: int) -> None:
    """An ``npy:`` folder of ``n`` random test images (and 64 training ones), written a chunk at a time."""
    folder.mkdir()
    generator = np.random.default_rng(0)
    for split, size in (("train", 64), ("test", n)):
        images = np.lib.format.open_memmap(folder / f"x_{split}.npy", mode="w+", dtype=np.uint8, shape=(size, *SHAPE))
        for start in range(0, size, WRITE_CHUNK):
            images[start:start + WRITE_CHUNK] = generator.integers(0, 256, (min(WRITE_CHUNK, size - start), *SHAPE))
        images.flush()
        del images
        np.save(folder / f"y_{split}.npy", np.arange(size) % 10)


def run() -> None:
    n = sized(N, TINY_N)
    mib = 2 ** 20
    with tempfile.TemporaryDirectory(prefix="bench-streamed-") as scratch:
        above: dict[tuple[bool, int], float] = {}
        for size in (n, 4 * n):
            write_folder(Path(scratch) / str(size), size)
            for streamed in (True, False):
                side = child_json(CHILD, Path(scratch) / str(size), "streamed" if streamed else "in-memory")
                assert side["rows"] == size and side["kind"] == ("StreamedInputs" if streamed else "Tensor"), side
                above[streamed, size] = side["peak"] - side["before"]
    pixels = n * int(np.prod(SHAPE)) / mib
    report("streamed probe memory, 4N against N", above[True, 4 * n] / above[True, n],
           "near 1: the peak does not grow with the examples", {
               "work": f"an MLP, 2 checkpoints, loss and max-softmax over N = {n} random 3x64x64 uint8 test images "
                       f"({pixels:.1f} MiB) and 4N; each measure a fresh process, its peak above what it held before "
                       "loading the dataset",
               "streamed (npy:)": f"N {above[True, n] / mib:.1f} MiB, 4N {above[True, 4 * n] / mib:.1f} MiB",
               "read into memory": f"N {above[False, n] / mib:.1f} MiB, 4N {above[False, 4 * n] / mib:.1f} MiB: "
                                   f"ratio {above[False, 4 * n] / above[False, n]:.2f}",
           })
