"""``python -m benchmarks [NAME ...]``: run the named benchmarks (default: all) and print their ratios.

OpenMP's threads spin as in a ``bench`` process (``GOMP_SPINCOUNT``, ``bench.config.OPENMP_SPINS``, unless
set), so that what runs here runs as ``bench`` runs it: with OpenMP's default spinning, training on a shared
machine took 3 times as long and varied by a quarter between two runs in one process.
"""

from __future__ import annotations

import argparse
import importlib
import os

from bench.config import OPENMP_SPINS

BENCHMARKS = {
    "probe-floor": "benchmarks.probe_floor",
    "probe-floor-resnet": "benchmarks.probe_floor_resnet",
    "training-overhead": "benchmarks.training_overhead",
    "per-example-gradients": "benchmarks.per_example_gradients",
    "vog-memory": "benchmarks.vog_memory",
    "vog-update": "benchmarks.vog_update",
    "seeds-at-once": "benchmarks.seeds_at_once",
    "end-to-end": "benchmarks.end_to_end",
    "cifar-loading": "benchmarks.cifar_loading",
    "colour-corruptions": "benchmarks.colour_corruptions",
    "load": "benchmarks.load",
    "detectors": "benchmarks.detectors",
    "passes": "benchmarks.passes",
    "gate-power": "benchmarks.gate_power",
    "knn": "benchmarks.knn",
    "intervals": "benchmarks.intervals",
    "cifar-recipe": "benchmarks.cifar_recipe",
    "recorder": "benchmarks.recorder",
    "sharded-probe": "benchmarks.sharded_probe",
    "sharded-memory": "benchmarks.sharded_memory",
    "streamed-memory": "benchmarks.streamed_memory",
    "disk-state": "benchmarks.disk_state",
    "imagenet-plan": "benchmarks.imagenet_plan",
}


def main() -> None:
    os.environ.setdefault("GOMP_SPINCOUNT", OPENMP_SPINS)  # before torch loads, as ``bench.cli.main`` does
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"default: all of {', '.join(BENCHMARKS)} "
                        "(end-to-end needs MNIST and takes about 15 minutes on two CPU cores)")
    names = parser.parse_args().names or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    for name in names:
        importlib.import_module(BENCHMARKS[name]).run()


if __name__ == "__main__":
    main()
