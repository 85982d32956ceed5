"""GraNd's per-example gradient norms: ``torch.func.vmap(grad)`` over a batch against one example at a time."""

from __future__ import annotations

import torch

from bench.gradients import param_grad_norms
from benchmarks.common import best_time, lenet_and_data, report

N = 256


def run() -> None:
    model, images, labels = lenet_and_data(N)
    x = images.float().div(255).reshape(N, 1, 28, 28)
    vectorised = best_time(lambda: param_grad_norms(model, x, labels, "vmap"))
    looped = best_time(lambda: param_grad_norms(model, x, labels, "loop"), repeat=1)
    difference = (param_grad_norms(model, x, labels, "vmap") - param_grad_norms(model, x, labels, "loop")).abs().max()
    report("per-example gradients (GraNd)", looped / vectorised, "vmap at least 5x faster than the loop", {
        "examples": f"{N} MNIST-sized images, LeNet-5 ({sum(p.numel() for p in model.parameters())} parameters)",
        "vmap": f"{vectorised * 1e3:.1f} ms",
        "loop": f"{looped * 1e3:.1f} ms",
        "largest difference between the two norms": f"{float(difference):.2e}",
        "threads": str(torch.get_num_threads()),
    })
