"""Per-example gradients of the cross-entropy, computed for a whole batch at once.

* The last linear layer's weight gradient has a closed form, ``(p - onehot(y)) h^T``: no
  backward pass at all (Outlier Gradient Analysis uses it).
* The norm of the gradient over every parameter (GraNd) comes from ``torch.func``:
  ``vmap(grad(loss))`` over the batch, or a loop over examples for models vmap cannot take.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.nn import functional


def last_layer_grad(logits: torch.Tensor, target: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
    """(n, classes, d): the gradient of CE(logits, target) w.r.t. the last layer's weight, per example."""
    residual = functional.softmax(logits, dim=1) - functional.one_hot(target, logits.shape[1]).to(logits.dtype)
    return residual[:, :, None] * embedding[:, None, :]


def _example_loss(model: nn.Module, buffers: dict):
    def loss(params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = torch.func.functional_call(model, (params, buffers), (x.unsqueeze(0),))
        return functional.cross_entropy(logits, y.unsqueeze(0))

    return loss


def param_grad_norms(model: nn.Module, x: torch.Tensor, target: torch.Tensor, method: str = "vmap") -> torch.Tensor:
    """(n,) L2 norm over all parameters of the gradient of each example's cross-entropy.

    ``method="vmap"`` vectorises over the batch; ``"loop"`` takes one example at a time.
    The model must be in eval mode (no batch statistics couple the examples).
    """
    params = {name: p.detach() for name, p in model.named_parameters()}
    loss = _example_loss(model, dict(model.named_buffers()))
    gradient = torch.func.grad(loss)
    if method == "vmap":
        grads = torch.func.vmap(gradient, in_dims=(None, 0, 0))(params, x, target)
        return torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in grads.values()))
    if method == "loop":
        norms = []
        for xi, yi in zip(x, target):
            grads = gradient(params, xi, yi)
            norms.append(torch.sqrt(sum(g.pow(2).sum() for g in grads.values())))
        return torch.stack(norms)
    raise ValueError(f"method must be vmap or loop, got {method!r}")


class GradNormComputer:
    """Uses vmap, and falls back to the loop for good (with a warning) the first time vmap fails."""

    def __init__(self) -> None:
        self.method = "vmap"

    def __call__(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.method == "vmap":
            try:
                return param_grad_norms(model, x, target, "vmap")
            except (RuntimeError, NotImplementedError) as error:
                warnings.warn(f"per-example gradients: vmap failed ({error}); falling back to a loop over examples",
                              stacklevel=2)
                self.method = "loop"
        return param_grad_norms(model, x, target, "loop")
