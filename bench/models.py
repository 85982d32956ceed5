"""The classifiers the harness trains: an MLP and LeNet-5.

Every model is ``head(embed(x))`` with ``head`` a single linear layer, so the probe gets
the penultimate embedding and the logits from one forward pass, and the last-layer
gradient has a closed form.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional

from bench.errors import BenchError


class _InputGradientConvolution(torch.autograd.Function):
    """A stride-1 convolution whose backward gives the input gradient alone, as a forward convolution.

    The input gradient of a convolution is the convolution of the output gradient with the
    flipped, transposed kernel. On the CPU, PyTorch's own input-gradient kernel is 3-5x
    slower than that forward convolution for LeNet's layers, and the probe's input gradients
    (VoG) are most of its cost.
    """

    @staticmethod
    def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: tuple[int, int]) -> torch.Tensor:
        return functional.conv2d(x, weight, bias, padding=padding)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        _, weight, _, padding = inputs
        ctx.save_for_backward(weight)
        ctx.padding = padding

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (weight,) = ctx.saved_tensors
        height, width = weight.shape[2:]
        padding = (height - 1 - ctx.padding[0], width - 1 - ctx.padding[1])
        grad_input = functional.conv2d(grad_output, weight.flip(2, 3).transpose(0, 1), padding=padding)
        return grad_input, None, None, None


def is_plain_convolution(layer: nn.Module) -> bool:
    """A ``Conv2d`` with stride 1, no dilation, one group and zero padding given as sizes: the case the fast paths handle."""
    return (isinstance(layer, nn.Conv2d) and isinstance(layer.padding, tuple) and layer.stride == (1, 1)
            and layer.dilation == (1, 1) and layer.groups == 1 and layer.padding_mode == "zeros")


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` that takes the fast input-gradient path when only the input needs a gradient.

    That is the probe's case (parameters frozen, input gradient wanted); training, with
    parameter gradients, runs the stock layer unchanged.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad and not self.weight.requires_grad and torch.is_grad_enabled() and is_plain_convolution(self):
            return _InputGradientConvolution.apply(x, self.weight, self.bias, self.padding)
        return super().forward(x)


class Classifier(nn.Module):
    """``embed`` maps inputs to the penultimate embedding; ``head`` maps it to logits."""

    embed: nn.Module
    head: nn.Linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


class MLP(Classifier):
    """Fully connected ReLU network; one hidden layer by default, as in the VoG toy experiment."""

    def __init__(self, input_shape: tuple[int, ...], n_classes: int, hidden: tuple[int, ...] = (256,)) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.embed = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_classes)


class LeNet5(Classifier):
    """LeNet-5 (LeCun et al. 1998) with ReLU and max pooling, the network of the VoG paper's MNIST-C study."""

    def __init__(self, input_shape: tuple[int, ...], n_classes: int) -> None:
        super().__init__()
        channels, height, width = input_shape
        if (height, width) != (28, 28):
            raise BenchError(f"LeNet-5 takes 28x28 images, got {height}x{width}; use --model mlp for other shapes")
        self.embed = nn.Sequential(
            Conv2d(channels, 6, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            Conv2d(6, 16, kernel_size=5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
        )
        self.head = nn.Linear(84, n_classes)


MODELS = {"mlp": MLP, "lenet": LeNet5}


def build_model(name: str, input_shape: tuple[int, ...], n_classes: int) -> Classifier:
    if name not in MODELS:
        raise BenchError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name](input_shape, n_classes)


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; anything else is passed to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise BenchError(f"device {device!r} is not a torch device ({error}); use auto, cpu or cuda") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise BenchError(f"device {device!r} asked for, but torch sees no CUDA GPU; use --device cpu or auto")
    return resolved
