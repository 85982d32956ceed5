"""What the benchmarks share: best-of-k timers, the ``BENCH_TINY`` switch, LeNet-5 on MNIST-sized
and a CIFAR ResNet on CIFAR-shaped random inputs.

``BENCH_TINY=1`` in the environment shrinks the benchmarks that read it (``sized``) to a few
seconds each, for smoke tests; their figures then say nothing about speed.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from typing import TypeVar

import torch

from bench.api import Checkpoint
from bench.models import Classifier, build_model

INPUT_SHAPE = (1, 28, 28)
CIFAR_SHAPE = (3, 32, 32)
N_CLASSES = 10
T = TypeVar("T")


def tiny() -> bool:
    """Whether ``BENCH_TINY`` asks for smoke-test sizes (any value but empty or 0), read at each call."""
    return os.environ.get("BENCH_TINY", "") not in ("", "0")


def sized(full: T, small: T) -> T:
    """``small`` under ``BENCH_TINY``, else ``full``."""
    return small if tiny() else full


# glibc's malloc, by default, raises its threshold for mapping a block to the largest block freed, then keeps freed
# blocks of that size in its heap: about 90 MiB of a probe's freed batches here, reached after some 30 batches and no
# more. A fixed threshold returns each freed batch at once, so that a peak counts the memory in use.
FIXED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def child_json(code: str, *args: object) -> dict:
    """Run ``code`` (``python -c``) with ``args`` in a fresh process under ``FIXED_MALLOC``; its last line, as JSON."""
    result = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, check=True,
                            env={**os.environ, **FIXED_MALLOC})
    return json.loads(result.stdout.strip().splitlines()[-1])


def resident_bytes() -> int:
    """This process's resident memory now."""
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_resident_bytes() -> int:
    """This process's peak resident memory (``VmHWM``, Linux). Not ``ru_maxrss``: a process started by fork and exec
    inherits it from its parent's size at the fork, so a child of a large parent reads the parent's size."""
    status = open("/proc/self/status").read()
    return int(re.search(r"^VmHWM:\s+(\d+) kB$", status, re.MULTILINE).group(1)) * 1024


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously; a timer must not stop before it)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def best_time(work: Callable[[], object], repeat: int = 3) -> float:
    """The fastest of ``repeat`` runs of ``work``, in seconds, after one warm-up run."""
    work()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def best_times(works: dict[str, Callable[[], object]], repeat: int = 3, warm_up: bool = True) -> dict[str, float]:
    """The fastest of ``repeat`` runs of each work, in seconds, the works taking turns after one warm-up
    run each (none with ``warm_up=False``, for a caller that warmed up on less): on a shared machine a
    burst of someone else's load then falls on both sides alike."""
    for work in works.values() if warm_up else ():
        work()
    times: dict[str, list[float]] = {name: [] for name in works}
    for _ in range(repeat):
        for name, work in works.items():
            started = time.perf_counter()
            work()
            times[name].append(time.perf_counter() - started)
    return {name: min(values) for name, values in times.items()}


def lenet_and_data(n: int, seed: int = 0) -> tuple[Classifier, torch.Tensor, torch.Tensor]:
    """A freshly initialised LeNet-5 in eval mode, ``n`` random uint8 images and labels."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = build_model("lenet", INPUT_SHAPE, N_CLASSES).eval()
    images = torch.randint(0, 256, (n, 28, 28), generator=generator, dtype=torch.uint8)
    labels = torch.randint(0, N_CLASSES, (n,), generator=generator)
    return model, images, labels


def resnet_and_data(n: int, name: str = "resnet20", seed: int = 0) -> tuple[Classifier, torch.Tensor, torch.Tensor]:
    """A freshly initialised CIFAR ResNet (``resnet20`` or ``resnet18``) in train mode, ``n`` random
    CIFAR-shaped uint8 images (n, 3, 32, 32) and labels."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = build_model(name, CIFAR_SHAPE, N_CLASSES)
    images = torch.randint(0, 256, (n, *CIFAR_SHAPE), generator=generator, dtype=torch.uint8)
    labels = torch.randint(0, N_CLASSES, (n,), generator=generator)
    return model, images, labels


def perturbed_checkpoints(model: torch.nn.Module, count: int, seed: int = 1) -> list[tuple[Checkpoint, dict]]:
    """``count`` checkpoints of ``model`` without training it: at checkpoint k its state, every float tensor moved by
    Gaussian noise of scale 0.01 k (a fixed ``seed``), so that scores over checkpoints have something to vary."""
    generator = torch.Generator().manual_seed(seed)
    checkpoints = []
    for index in range(count):
        state = copy.deepcopy(model.state_dict())
        for value in state.values():
            if value.is_floating_point():
                value.add_(0.01 * index * torch.randn(value.shape, generator=generator))
        checkpoints.append((Checkpoint(index=index, epoch=index, total=count), state))
    return checkpoints


def report(name: str, ratio: float, target: str, figures: dict[str, str]) -> None:
    print(f"{name}: ratio {ratio:.2f} (target: {target})")
    for key, value in figures.items():
        print(f"  {key}: {value}")
