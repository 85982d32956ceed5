"""GraNd's per-example gradient norms: batched (``torch.func.vmap(grad)``, and read off the layers) against a loop,
and the layer-wise method against a plain batched backward pass to the parameters (``loss.backward()`` of the
summed cross-entropy, the model in eval mode), the floor of any per-example method: both include their forward pass.
On poolnet (the CIFAR-10 CPU preset's network), the layer-wise method with the ghost norm where it costs less
(``bench.gradients.ghost_is_cheaper``) against the same with every convolution's gradients formed."""

from __future__ import annotations

from unittest import mock

import torch
from torch.nn import functional

from bench import gradients
from bench.gradients import param_grad_norms
from bench.models import PoolNet
from benchmarks.common import best_time, best_times, lenet_and_data, report

N = 256


def run() -> None:
    run_lenet()
    run_poolnet()


def run_lenet() -> None:
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


def run_poolnet() -> None:
    torch.manual_seed(0)
    model = PoolNet((3, 32, 32), 10).eval().requires_grad_(False)
    x, labels = torch.randn(N, 3, 32, 32), torch.randint(0, 10, (N,))

    def formed() -> torch.Tensor:
        with mock.patch.object(gradients, "ghost_is_cheaper", return_value=False):
            return param_grad_norms(model, x, labels, "layers")

    def plain_backward() -> None:
        model.requires_grad_(True)
        functional.cross_entropy(model(x), labels, reduction="sum").backward()
        model.zero_grad(set_to_none=True)
        model.requires_grad_(False)

    seconds = best_times({"mixed": lambda: param_grad_norms(model, x, labels, "layers"), "formed": formed,
                          "plain": plain_backward}, repeat=5)
    difference = float(((param_grad_norms(model, x, labels, "layers") - formed()).abs() / formed()).max())
    report("per-example gradient norms on poolnet: ghost norm where cheaper", seconds["mixed"] / seconds["formed"],
           "below 1", {
               "examples": f"{N} random 3x32x32 images, poolnet ({sum(p.numel() for p in model.parameters())} parameters)",
               **{name: f"{value * 1e3:.1f} ms (best of 5, taking turns)" for name, value in seconds.items()},
               "mixed against a plain forward + backward to the parameters": f"{seconds['mixed'] / seconds['plain']:.2f}",
               "largest relative difference, mixed against formed": f"{difference:.1e}",
               "threads": str(torch.get_num_threads()),
           })
