"""Several seeds trained together (``torch.func.stack_module_state`` and ``vmap``) against one after another.

Both sides run the same work: LeNet-5, one epoch of SGD with momentum over the same images,
each seed with its own initialisation and its own batch order. On a GPU the stacked models
fill the device; on a small CPU there is little idle width to fill, and the ratio says so.
``measure`` takes the device and the number of images (``benchmarks.gpu`` runs it on CUDA).
"""

from __future__ import annotations

import copy

import torch
from torch.nn import functional

from bench.models import build_model
from bench.training import model_input
from benchmarks.common import INPUT_SHAPE, N_CLASSES, best_time, lenet_and_data, report, synchronize

SEEDS = 5
N = 4096
BATCH = 64
LR, MOMENTUM = 0.03, 0.9


def orders(n: int = N) -> torch.Tensor:
    """(seeds, n): each seed's batch order."""
    return torch.stack([torch.randperm(n, generator=torch.Generator().manual_seed(seed)) for seed in range(SEEDS)])


def models(device: torch.device | str = "cpu") -> list[torch.nn.Module]:
    out = []
    for seed in range(SEEDS):
        torch.manual_seed(seed)
        out.append(build_model("lenet", INPUT_SHAPE, N_CLASSES).to(device))
    return out


def one_after_another(images: torch.Tensor, labels: torch.Tensor, order: torch.Tensor) -> list[torch.nn.Module]:
    trained = models(images.device)
    for model, seed_order in zip(trained, order):
        optimiser = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
        for start in range(0, order.shape[1], BATCH):
            index = seed_order[start:start + BATCH]
            optimiser.zero_grad()
            functional.cross_entropy(model(model_input(images[index], INPUT_SHAPE)), labels[index]).backward()
            optimiser.step()
    synchronize(images.device)
    return trained


def together(images: torch.Tensor, labels: torch.Tensor, order: torch.Tensor) -> dict[str, torch.Tensor]:
    stack = models(images.device)
    params, buffers = torch.func.stack_module_state(stack)
    params = {name: value.detach() for name, value in params.items()}
    base = copy.deepcopy(stack[0]).to("meta")

    def loss(p: dict, b: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return functional.cross_entropy(torch.func.functional_call(base, (p, b), (x,)), y)

    step = torch.func.vmap(torch.func.grad(loss))
    velocity = {name: torch.zeros_like(value) for name, value in params.items()}
    for start in range(0, order.shape[1], BATCH):
        index = order[:, start:start + BATCH]
        x = model_input(images[index.flatten()], INPUT_SHAPE).reshape(SEEDS, -1, *INPUT_SHAPE)
        grads = step(params, buffers, x, labels[index])
        for name, grad in grads.items():
            velocity[name].mul_(MOMENTUM).add_(grad)
            params[name].sub_(LR * velocity[name])
    synchronize(images.device)
    return params


def measure(device: torch.device | str = "cpu", n: int = N) -> dict[str, float]:
    """Seconds of the two ways (best of one after a warm-up each) and the largest difference between
    the weights they train."""
    _, images, labels = lenet_and_data(n)
    images, labels, order = images.to(device), labels.to(device), orders(n).to(device)
    sequential = best_time(lambda: one_after_another(images, labels, order), repeat=1)
    stacked = best_time(lambda: together(images, labels, order), repeat=1)
    separate, joint = one_after_another(images, labels, order), together(images, labels, order)
    difference = max(float((joint[name][seed] - value.detach()).abs().max())
                     for seed, model in enumerate(separate) for name, value in model.named_parameters())
    return {"one after another": sequential, "together": stacked, "difference": difference}


def run() -> None:
    seconds = measure()
    report("seeds at once", seconds["one after another"] / seconds["together"],
           "on a GPU 2.5 or more (5 seeds in the time of 2); on CPU, whatever it is", {
        "work": f"{SEEDS} seeds x one epoch of {N} MNIST-sized images, batch {BATCH}, LeNet-5, CPU",
        "one after another": f"{seconds['one after another']:.2f} s",
        "together (stack_module_state + vmap)": f"{seconds['together']:.2f} s",
        "largest difference between the trained weights of the two ways": f"{seconds['difference']:.1e}",
        "threads": str(torch.get_num_threads()),
    })
