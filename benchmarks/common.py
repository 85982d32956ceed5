"""What the benchmarks share: a best-of-k timer and LeNet-5 on MNIST-sized random inputs."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from bench.models import Classifier, build_model

INPUT_SHAPE = (1, 28, 28)
N_CLASSES = 10


def best_time(work: Callable[[], object], repeat: int = 3) -> float:
    """The fastest of ``repeat`` runs of ``work``, in seconds, after one warm-up run."""
    work()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def lenet_and_data(n: int, seed: int = 0) -> tuple[Classifier, torch.Tensor, torch.Tensor]:
    """A freshly initialised LeNet-5 in eval mode, ``n`` random uint8 images and labels."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = build_model("lenet", INPUT_SHAPE, N_CLASSES).eval()
    images = torch.randint(0, 256, (n, 28, 28), generator=generator, dtype=torch.uint8)
    labels = torch.randint(0, N_CLASSES, (n,), generator=generator)
    return model, images, labels


def report(name: str, ratio: float, target: str, figures: dict[str, str]) -> None:
    print(f"{name}: ratio {ratio:.2f} (target: {target})")
    for key, value in figures.items():
        print(f"  {key}: {value}")
