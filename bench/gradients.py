"""Per-example gradients of the cross-entropy, computed for a whole batch at once.

* The last linear layer's weight gradient has a closed form, ``(p - onehot(y)) h^T``: no
  backward pass at all (Outlier Gradient Analysis uses it).
* The norm of the gradient over every parameter (GraNd): for models whose parameters all
  sit in ``Linear``, stride-1 ``Conv2d`` and (eval-mode) ``BatchNorm2d`` layers, from each
  layer's input and output gradient of one batched backward pass (a linear layer's per-example
  weight gradient is the outer product ``g a^T``; a convolution's is the correlation of the
  example's input with its output gradient, for the whole batch one grouped convolution, or, where
  that costs less, the ghost norm from the Gram matrices of its input patches and output gradients; a
  batch norm's, the sums over positions of ``g`` times the normalised input and of ``g``);
  otherwise from ``torch.func``,
  ``vmap(grad(loss))`` over the batch, or a loop over examples for models vmap cannot take.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence

import torch
from torch import nn
from torch.nn import functional

from bench.models import is_plain_convolution


def last_layer_grad(logits: torch.Tensor, target: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
    """(n, classes, d): the gradient of CE(logits, target) w.r.t. the last layer's weight, per example."""
    residual = functional.softmax(logits, dim=1) - functional.one_hot(target, logits.shape[1]).to(logits.dtype)
    return residual[:, :, None] * embedding[:, None, :]


def _example_loss(model: nn.Module, buffers: dict):
    def loss(params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = torch.func.functional_call(model, (params, buffers), (x.unsqueeze(0),))
        return functional.cross_entropy(logits, y.unsqueeze(0))

    return loss


def readable_layers(model: nn.Module) -> list[nn.Module] | None:
    """The modules holding parameters, if each is a Linear, a plain stride-1 Conv2d or an eval-mode BatchNorm2d
    layer (a fixed affine map of each example alone); else None."""
    layers = [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))]
    return layers if all(isinstance(m, nn.Linear) or is_plain_convolution(m) or _is_fixed_batch_norm(m)
                         for m in layers) else None


def _is_fixed_batch_norm(layer: nn.Module) -> bool:
    return (type(layer) is nn.BatchNorm2d and not layer.training and layer.affine
            and layer.running_mean is not None and layer.running_var is not None)


@contextlib.contextmanager
def recording(model: nn.Module, layers: list[nn.Module]) -> Iterator[dict[nn.Module, tuple[torch.Tensor, torch.Tensor]]]:
    """Within it, a forward pass of ``model`` records each layer's input (detached) and output, which is in the
    graph: the frozen parameters require grad meanwhile (a backward pass to the outputs computes no parameter
    gradient)."""
    record: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}

    def keep(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        record[module] = (args[0].detach(), output)

    frozen = [p for p in model.parameters() if not p.requires_grad]
    hooks = [layer.register_forward_hook(keep) for layer in layers]
    try:
        for p in frozen:
            p.requires_grad_(True)
        yield record
    finally:
        for hook in hooks:
            hook.remove()
        for p in frozen:
            p.requires_grad_(False)


def layer_norms(layers: list[nn.Module], record: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]],
                grads: Sequence[torch.Tensor]) -> torch.Tensor:
    """(n,) each example's parameter-gradient norm, from the layers' recorded inputs and the gradients of the
    summed loss w.r.t. their outputs (``grads``, in the order of ``layers``)."""
    some_input = record[layers[0]][0]
    squared = torch.zeros(len(some_input), dtype=some_input.dtype, device=some_input.device)
    for layer, grad in zip(layers, grads):
        a = record[layer][0]
        if isinstance(layer, nn.Linear):
            if a.ndim != 2:
                raise NotImplementedError("per-example norms of a Linear layer on sequences")
            g = grad
            squared += g.pow(2).sum(1) * a.pow(2).sum(1)
        elif isinstance(layer, nn.BatchNorm2d):  # eval mode: weight * (a - running mean) / sqrt(running var + eps) + bias
            normalised = (a - layer.running_mean[:, None, None]) / torch.sqrt(layer.running_var[:, None, None] + layer.eps)
            squared += (grad * normalised).sum((2, 3)).pow(2).sum(1)
            g = grad.sum((2, 3))
        else:
            squared += (conv_ghost_norms if ghost_is_cheaper(layer, grad) else conv_weight_norms)(layer, a, grad)
            g = grad.sum((2, 3))
        if layer.bias is not None:
            squared += g.pow(2).sum(1)
    return squared.sqrt()


def conv_weight_norms(layer: nn.Conv2d, a: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """(n,) squared norms of a convolution's per-example weight gradients, each formed in full: examples become
    groups, (in channels, n, h, w) correlated with (n * out channels, 1, h', w')."""
    n, channels = a.shape[:2]
    weight_grads = functional.conv2d(a.transpose(0, 1), grad.flatten(0, 1).unsqueeze(1), padding=layer.padding, groups=n)
    return weight_grads.pow(2).reshape(channels, n, -1).sum((0, 2))


def conv_ghost_norms(layer: nn.Conv2d, a: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """(n,) the same squared norms without forming the gradients (the "ghost norm", Goodfellow 2015; Li et al.
    2022): with the input patches u_t and output gradients g_t at the T output positions, the weight gradient is
    sum_t g_t u_t^T, whose squared norm is sum_{t,s} (u_t . u_s)(g_t . g_s)."""
    patches = functional.unfold(a, layer.kernel_size, padding=layer.padding)  # (n, in channels * kernel, T)
    outputs = grad.flatten(2)  # (n, out channels, T)
    return (patches.transpose(1, 2) @ patches).mul_(outputs.transpose(1, 2) @ outputs).sum((1, 2))


def ghost_is_cheaper(layer: nn.Conv2d, grad: torch.Tensor) -> bool:
    """Whether the ghost norm takes fewer multiply-adds than forming the gradient: T^2 (d + p) against T d p, for
    T output positions, d = in channels x kernel size and p out channels (Bu et al. 2022's rule for mixing the
    two layer by layer). It holds where few positions meet many channels, as in a CIFAR network's last stages."""
    positions, patch = grad.shape[2] * grad.shape[3], layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]
    return positions * (patch + layer.out_channels) < patch * layer.out_channels


def _layer_norms(model: nn.Module, layers: list[nn.Module], x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    with recording(model, layers) as record, torch.enable_grad():
        loss = functional.cross_entropy(model(x), target, reduction="sum")
        grads = torch.autograd.grad(loss, [record[layer][1] for layer in layers])
    return layer_norms(layers, record, grads)


def param_grad_norms(model: nn.Module, x: torch.Tensor, target: torch.Tensor, method: str = "layers") -> torch.Tensor:
    """(n,) L2 norm over all parameters of the gradient of each example's cross-entropy.

    ``method="layers"`` reads them off one batched backward pass (Linear, Conv2d and BatchNorm2d models
    only); ``"vmap"`` vectorises ``torch.func.grad`` over the batch; ``"loop"`` takes one
    example at a time. The model must be in eval mode (no batch statistics couple the examples).
    """
    if method == "layers":
        layers = readable_layers(model)
        if layers is None:
            raise NotImplementedError("the model has parameters outside plain Linear, Conv2d and eval-mode BatchNorm2d "
                                      "layers")
        return _layer_norms(model, layers, x, target)
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
    raise ValueError(f"method must be layers, vmap or loop, got {method!r}")


METHODS = ("layers", "vmap", "loop")


class GradNormComputer:
    """Uses the fastest method that works, falling back for good (with a warning) the first time one fails."""

    def __init__(self) -> None:
        self.method = METHODS[0]

    def __call__(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        while self.method != METHODS[-1]:
            try:
                return param_grad_norms(model, x, target, self.method)
            except (RuntimeError, NotImplementedError) as error:
                fallback = METHODS[METHODS.index(self.method) + 1]
                warnings.warn(f"per-example gradients: {self.method} failed ({error}); falling back to {fallback}",
                              stacklevel=2)
                self.method = fallback
        return param_grad_norms(model, x, target, self.method)
