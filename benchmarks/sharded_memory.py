"""What shards save in memory: the probe's peak resident memory with 4 shards against 1.

Each side runs in a fresh process: poolnet (random weights, 3 checkpoints made by perturbing them) over ``N`` random
CIFAR-shaped images, scored by ``vog`` alone, whose running state (a mean and a second moment per pixel, float64) is
the largest a probe keeps: 16 KiB an example. The figure of each side is its peak resident memory above what the
process held just before the probe (the data, the model and its checkpoints). One shard holds the state of a quarter
of the images: the ratio is the fall of the peak over the fall of the state, near 1 if the shards save what they
should and nothing else grows. Each process runs with a fixed malloc threshold (``benchmarks.common.FIXED_MALLOC``),
so that its peak counts the memory in use, not freed batches the allocator keeps.
"""

from __future__ import annotations

from benchmarks.common import child_json, report, sized

N, TINY_N = 8192, 512
SHARDS = 4

CHILD = """
import json, sys
from bench import registry
from bench.probe import Probe, ProbeSplit, Sharding
from benchmarks.common import peak_resident_bytes, perturbed_checkpoints, resident_bytes, resnet_and_data

n, shards = int(sys.argv[1]), int(sys.argv[2])
model, images, labels = resnet_and_data(n, "poolnet")
states = perturbed_checkpoints(model, 3)
probe = Probe({"test": ProbeSplit(images, labels, trusted_labels=False)}, [registry.create("vog")], (3, 32, 32))
before = resident_bytes()
probe.run(model, states, sharding=Sharding(shards))
peak = peak_resident_bytes()
print(json.dumps({"before": before, "peak": peak, "state": probe.cost["vog"]["state_bytes"]}))
"""


def run() -> None:
    n = sized(N, TINY_N)
    whole, sharded = child_json(CHILD, n, 1), child_json(CHILD, n, SHARDS)
    above = {name: side["peak"] - side["before"] for name, side in (("whole", whole), ("sharded", sharded))}
    saved_state = whole["state"] - sharded["state"]
    mib = 2 ** 20
    report(f"sharded probe memory, {SHARDS} shards", (above["whole"] - above["sharded"]) / saved_state,
           "near 1: the peak falls by the state a shard does not hold", {
               "work": f"poolnet, 3 checkpoints, {n} random CIFAR-shaped images, vog alone; each side a fresh process",
               "1 shard": f"peak {above['whole'] / mib:.1f} MiB above the {whole['before'] / mib:.1f} MiB held before "
                          f"the probe; vog's state {whole['state'] / mib:.1f} MiB",
               f"{SHARDS} shards": f"peak {above['sharded'] / mib:.1f} MiB above the {sharded['before'] / mib:.1f} MiB "
                                   f"held before the probe; vog's state {sharded['state'] / mib:.1f} MiB",
           })
