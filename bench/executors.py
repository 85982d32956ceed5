"""Executors: where the units of a plan run, behind one interface, ``Executor.map``.

* ``LocalExecutor`` (default): one after another in this process; the model-free columns
  (detectors on pixels) are computed by the first unit and shared by the others.
* ``RayExecutor``: each unit a Ray task, on a local Ray instance or the cluster at
  ``address``. The driver puts the data in Ray's object store once. Scores depend on the
  number of CPU threads (the order of floating-point sums in training and in BLAS), so each
  task asks for as many CPUs as this process's torch threads and uses exactly that many: the
  scores are then the local executor's. A task asks for one GPU when the device is CUDA, and
  computes the model-free columns itself, so units need not wait for one another. Workers get this
  process's ``GOMP_SPINCOUNT`` (``bench.config.OPENMP_SPINS`` if unset), as a ``bench`` process has.
  Checkpoints are written where the task runs: the results folder should be on a shared
  filesystem for a cluster. With ``shards`` > 1, the shards of each unit's probe are Ray tasks too
  (``ray_shards``), spread over the cluster, each with the unit's CPUs: the scores stay the local run's.

Both yield (seed, score table) as units finish; the caller saves each at once, so a killed
run keeps every finished unit.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator

import torch
from tqdm.auto import tqdm

from bench.config import OPENMP_SPINS
from bench.data import Dataset
from bench.errors import BenchError
from bench.models import resolve_device
from bench.plan import Plan, scorer_specs
from bench.probe import Shard, ShardWork
from bench.store import Reused, ScoreTable
from bench.unit import compute_unit


def model_free_columns(plan: Plan, table: ScoreTable) -> Reused:
    reused = Reused()
    for spec in table.columns():
        if spec in plan.model_free:
            reused.take(spec, table, spec)
    return reused


class Executor(ABC):
    """Runs units; ``model_free`` holds model-free columns already computed (by a unit on disk)."""

    @abstractmethod
    def map(self, plan: Plan, dataset: Dataset, seeds: list[int], code: str, model_free: Reused,
            progress: bool) -> Iterator[tuple[int, ScoreTable]]:
        """Compute the units of ``seeds``; yields (seed, score table) as each finishes."""


class LocalExecutor(Executor):
    def map(self, plan: Plan, dataset: Dataset, seeds: list[int], code: str, model_free: Reused,
            progress: bool) -> Iterator[tuple[int, ScoreTable]]:
        device = resolve_device(plan.config.device)
        for seed in seeds:
            table = compute_unit(plan, dataset, seed, device, code, progress, model_free)
            model_free = model_free if model_free.columns else model_free_columns(plan, table)
            yield seed, table


@contextlib.contextmanager
def cpu_threads(count: int) -> Iterator[None]:
    """torch's CPU threads and the BLAS and OpenMP pools of numpy, scipy and scikit-learn set to ``count`` for the
    run, and restored after it (a notebook keeps its own): every one of them changes the floating-point sums."""
    from threadpoolctl import threadpool_limits

    import sklearn  # noqa: F401  (loads those pools: the limits reach only libraries already loaded)

    before = torch.get_num_threads()
    with threadpool_limits(limits=count):
        torch.set_num_threads(count)
        try:
            yield
        finally:
            torch.set_num_threads(before)


def _unit_task(plan: Plan, dataset: Dataset, seed: int, code: str, model_free: Reused, threads: int,
               gpus: int) -> ScoreTable:
    with cpu_threads(threads):
        scorer_specs(plan.config)  # registers the run's plugin files in this worker
        return compute_unit(plan, dataset, seed, resolve_device(plan.config.device), code, False, model_free,
                            functools.partial(ray_shards, threads=threads, gpus=gpus))


def _shard_task(probe_shard: Callable[[ShardWork], Shard], work: ShardWork, threads: int) -> Shard:
    with cpu_threads(threads):
        return probe_shard(work)


def ray_shards(probe_shard: Callable[[ShardWork], Shard], works: list[ShardWork], threads: int,
               gpus: int) -> Iterator[Shard]:
    """Each shard of a unit's probe a Ray task, asking for the unit's CPUs (and GPU), spread over the cluster's nodes:
    the probe, the model and its checkpoints are put in the object store once; the shards come back in order. The
    unit's task waits for them without holding its CPUs (Ray frees a task's resources while it waits on others)."""
    import ray

    task = ray.remote(num_cpus=threads, num_gpus=gpus, scheduling_strategy="SPREAD")(_shard_task)
    shared = ray.put(probe_shard)
    for future in [task.remote(shared, work, threads) for work in works]:
        yield ray.get(future)


class RayExecutor(Executor):
    def __init__(self, address: str | None = None) -> None:
        self.address = address

    def map(self, plan: Plan, dataset: Dataset, seeds: list[int], code: str, model_free: Reused,
            progress: bool) -> Iterator[tuple[int, ScoreTable]]:
        try:
            import ray
        except ImportError:
            raise BenchError("--executor ray needs Ray: pip install 'difficulty-bench[ray]' (or pip install ray)") from None
        if self.address and self.address.startswith("ray://") and importlib.util.find_spec("grpc") is None:
            # grpc is what the Ray client needs beyond Ray (the ``client`` extra); Ray raises a ValueError without it
            raise BenchError(f"--ray-address {self.address} joins through the Ray client, which is not installed: "
                             "pip install \"ray[client]\" (or pip install 'difficulty-bench[ray]', whose ray extra has it)")
        if not seeds:
            return
        started_here = not ray.is_initialized()
        if started_here:
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                         runtime_env={"env_vars": {"GOMP_SPINCOUNT": os.environ.get("GOMP_SPINCOUNT", OPENMP_SPINS)}})
            except ConnectionError as error:
                raise BenchError(
                    f"could not join the Ray cluster at {self.address} ({error}); a cluster started with "
                    "`ray start --head` asks for token authentication in recent Ray (2.60 does): run bench with "
                    "RAY_AUTH_MODE=token set, and check the address that `ray status` shows"
                ) from None
        try:
            threads = torch.get_num_threads()
            gpus = 1 if resolve_device(plan.config.device).type == "cuda" else 0
            largest = max((node["Resources"].get("CPU", 0) for node in ray.nodes() if node["Alive"]), default=0)
            if largest < threads:
                raise BenchError(f"every unit needs {threads} CPUs (this process's torch threads, for the same scores as "
                                 f"a local run) but the largest Ray node has {largest:g}; run with fewer threads "
                                 f"(OMP_NUM_THREADS={int(largest)}) or join a cluster with larger nodes")
            task = ray.remote(num_cpus=threads, num_gpus=gpus)(_unit_task)
            data = ray.put(dataset)
            running = {task.remote(plan, data, seed, code, model_free, threads, gpus): seed for seed in seeds}
            with tqdm(total=len(running), desc=f"{dataset.name} {plan.config.model}: units on Ray", unit="unit",
                      disable=not progress, file=sys.stderr) as bar:
                while running:
                    [done], _ = ray.wait(list(running))
                    seed = running.pop(done)
                    yield seed, ray.get(done)
                    bar.update()
        finally:
            if started_here:
                ray.shutdown()


def executor(name: str, ray_address: str | None = None) -> Executor:
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(ray_address)
    raise BenchError(f"unknown executor {name!r}; use one of local, ray")
