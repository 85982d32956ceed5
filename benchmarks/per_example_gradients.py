"""GraNd's per-example gradient norms: batched (``torch.func.vmap(grad)``, and read off the layers) against a loop,
and the layer-wise method against a plain batched backward pass to the parameters (``loss.backward()`` of the
summed cross-entropy, the model in eval mode), the floor of any per-example method: both include their forward pass."""

from __future__ import annotations

import torch
from torch.nn import functional

from bench.gradients import param_grad_norms
from benchmarks.common import best_time, best_times, lenet_and_data, report

N = 256


def run() -> None:
    model, images, labels = lenet_and_data(N)
    model.requires_grad_(False)  # as in the probe
    x = images.float().div(255).reshape(N, 1, 28, 28)
    seconds = {method: best_time(lambda method=method: param_grad_norms(model, x, labels, method),
                                 repeat=1 if method == "loop" else 3) for method in ("layers", "vmap", "loop")}

    def plain_backward() -> None:
        model.requires_grad_(True)
        functional.cross_entropy(model(x), labels, reduction="sum").backward()
        model.zero_grad(set_to_none=True)
        model.requires_grad_(False)

    against_plain = best_times({"layers": lambda: param_grad_norms(model, x, labels, "layers"), "plain": plain_backward},
                               repeat=7)
    norms = {method: param_grad_norms(model, x, labels, method) for method in seconds}
    difference = max(float((norms[method] - norms["loop"]).abs().max()) for method in ("layers", "vmap"))
    report("per-example gradients (GraNd)", seconds["loop"] / seconds["vmap"], "torch.func at least 5x faster than the loop", {
        "examples": f"{N} MNIST-sized images, LeNet-5 ({sum(p.numel() for p in model.parameters())} parameters)",
        **{method: f"{value * 1e3:.1f} ms" for method, value in seconds.items()},
        "layers (the probe's default) against the loop": f"{seconds['loop'] / seconds['layers']:.1f}x",
        "layers against a plain forward + backward to the parameters": (
            f"{against_plain['layers'] / against_plain['plain']:.2f} ({against_plain['layers'] * 1e3:.1f} ms / "
            f"{against_plain['plain'] * 1e3:.1f} ms, best of 7 taking turns)"),
        "largest difference from the loop's norms": f"{difference:.2e}",
        "threads": str(torch.get_num_threads()),
    })
