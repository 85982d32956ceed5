"""The classifiers the harness trains: an MLP and LeNet-5.

Every model is ``head(embed(x))`` with ``head`` a single linear layer, so the probe gets
the penultimate embedding and the logits from one forward pass, and the last-layer
gradient has a closed form.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bench.errors import BenchError


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
            nn.Conv2d(channels, 6, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
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
