"""The Ray executor: each unit (dataset x model x seed) of a run as one Ray task.

The driver loads the data once and puts it in Ray's object store; each task trains, probes
and scores its unit and returns the score table, which the driver saves as soon as it
arrives (a killed run keeps every finished unit). Scores depend on the number of CPU
threads (the order of floating-point sums in training and in BLAS), so each task asks for
as many CPUs as this process's torch threads and uses exactly that many: the leaderboard is
then the local executor's. A task asks for one GPU when the run's device is CUDA.
Checkpoints are written where the task runs: in the results folder itself on one machine
or a shared filesystem.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import torch
from tqdm.auto import tqdm

from bench.config import RunConfig
from bench.data import Dataset
from bench.errors import BenchError
from bench.models import resolve_device
from bench.results import ScoreTable


def _unit_task(config: RunConfig, specs: list[str], dataset: Dataset, seed: int, config_hash: str, code: str,
               model_free: dict, threads: int) -> ScoreTable:
    from bench.runner import compute_unit, scorer_specs

    torch.set_num_threads(threads)
    scorer_specs(config)  # registers the run's plugin files in this worker
    return compute_unit(config, specs, dataset, seed, resolve_device(config.device), config_hash, False, model_free, code)


def run_on_ray(config: RunConfig, specs: list[str], dataset: Dataset, seeds: list[int], config_hash: str, code: str,
               model_free: dict, address: str | None, progress: bool) -> Iterator[tuple[int, ScoreTable]]:
    """Run the units of ``seeds`` as Ray tasks; yields (seed, score table) in the order they finish."""
    try:
        import ray
    except ImportError:
        raise BenchError("--executor ray needs Ray: pip install 'difficulty-bench[ray]' (or pip install ray)") from None
    if not seeds:
        return
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        threads = torch.get_num_threads()
        gpus = 1 if resolve_device(config.device).type == "cuda" else 0
        largest = max((node["Resources"].get("CPU", 0) for node in ray.nodes() if node["Alive"]), default=0)
        if largest < threads:
            raise BenchError(f"every unit needs {threads} CPUs (this process's torch threads, for the same scores as "
                             f"a local run) but the largest Ray node has {largest:g}; run with fewer threads "
                             f"(OMP_NUM_THREADS={int(largest)}) or join a cluster with larger nodes")
        task = ray.remote(num_cpus=threads, num_gpus=gpus)(_unit_task)
        data = ray.put(dataset)
        running = {task.remote(config, specs, data, seed, config_hash, code, model_free, threads): seed for seed in seeds}
        with tqdm(total=len(running), desc=f"{dataset.name} {config.model}: units on Ray", unit="unit",
                  disable=not progress, file=sys.stderr) as bar:
            while running:
                [done], _ = ray.wait(list(running))
                seed = running.pop(done)
                yield seed, ray.get(done)
                bar.update()
    finally:
        if started_here:
            ray.shutdown()
