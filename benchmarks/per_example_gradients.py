"""GraNd's per-example gradient norms: batched (``torch.func.vmap(grad)``, and read off the layers) against a loop."""

from __future__ import annotations

import torch

from bench.gradients import param_grad_norms
from benchmarks.common import best_time, lenet_and_data, report

N = 256


def run() -> None:
    model, images, labels = lenet_and_data(N)
    model.requires_grad_(False)  # as in the probe
    x = images.float().div(255).reshape(N, 1, 28, 28)
    seconds = {method: best_time(lambda method=method: param_grad_norms(model, x, labels, method),
                                 repeat=1 if method == "loop" else 3) for method in ("layers", "vmap", "loop")}
    norms = {method: param_grad_norms(model, x, labels, method) for method in seconds}
    difference = max(float((norms[method] - norms["loop"]).abs().max()) for method in ("layers", "vmap"))
    report("per-example gradients (GraNd)", seconds["loop"] / seconds["vmap"], "torch.func at least 5x faster than the loop", {
        "examples": f"{N} MNIST-sized images, LeNet-5 ({sum(p.numel() for p in model.parameters())} parameters)",
        **{method: f"{value * 1e3:.1f} ms" for method, value in seconds.items()},
        "layers (the probe's default) against the loop": f"{seconds['loop'] / seconds['layers']:.1f}x",
        "largest difference from the loop's norms": f"{difference:.2e}",
        "threads": str(torch.get_num_threads()),
    })
