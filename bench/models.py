"""The classifiers the harness trains: the built-ins (MLP, LeNet-5, CIFAR ResNet-20 and -18), or any ``nn.Module``.

Every model is ``head(embed(x))`` with ``head`` a single linear layer, so the probe gets
the penultimate embedding and the logits from one forward pass, and the last-layer
gradient has a closed form. A model of the user's (``--model module:callable``, or an
installed plugin of the entry-point group ``bench.models``, where the built-ins are declared
too) is any network whose last ``nn.Linear`` gives its output; the harness finds that head
and reads the embedding, its input, with a hook (``Wrapped``), and refuses a network it
cannot split so.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional

from bench.errors import BenchError
from bench.plugins import Registry


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


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a shortcut (He et al. 2016): identity, or, where the
    shape changes, a 1x1 convolution (``projection``) or the paper's option A, subsampling and zero channels."""

    def __init__(self, channels_in: int, channels: int, stride: int, projection: bool) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(channels_in, channels, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        self.stride, self.extra = stride, channels - channels_in
        self.shortcut = nn.Identity()
        if projection and (stride != 1 or channels != channels_in):
            self.shortcut = nn.Sequential(nn.Conv2d(channels_in, channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.shortcut, nn.Identity) and (self.stride != 1 or self.extra):  # option A
            shortcut = functional.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, 0, self.extra))
        else:
            shortcut = self.shortcut(x)
        return functional.relu(self.convs(x) + shortcut)


class ResNet(Classifier):
    """A CIFAR ResNet: a 3x3 stem without max-pooling, stages of basic blocks, global average pooling."""

    def __init__(self, input_shape: tuple[int, ...], n_classes: int, widths: tuple[int, ...], blocks: int,
                 projection: bool) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise BenchError(f"a ResNet takes images (channels, height, width), got inputs of shape {input_shape}")
        layers: list[nn.Module] = [nn.Conv2d(input_shape[0], widths[0], 3, padding=1, bias=False),
                                   nn.BatchNorm2d(widths[0]), nn.ReLU()]
        channels = widths[0]
        for stage, width in enumerate(widths):
            for block in range(blocks):
                layers.append(BasicBlock(channels, width, 2 if stage and not block else 1, projection))
                channels = width
        self.embed = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(channels, n_classes)


def resnet20(input_shape: tuple[int, ...], n_classes: int) -> ResNet:
    """ResNet-20 of He et al. (2016) for CIFAR: 3 stages of 3 blocks, 16-32-64 channels, option A shortcuts
    (0.27M parameters); small enough to train on CIFAR-shaped data on two CPU cores."""
    return ResNet(input_shape, n_classes, (16, 32, 64), 3, projection=False)


def resnet18(input_shape: tuple[int, ...], n_classes: int) -> ResNet:
    """The CIFAR ResNet-18: 4 stages of 2 blocks, 64-512 channels, projection shortcuts (11.2M parameters)."""
    return ResNet(input_shape, n_classes, (64, 128, 256, 512), 2, projection=True)


class Wrapped(Classifier):
    """Any ``nn.Module`` whose last layer is an ``nn.Linear`` producing its output: ``embed`` is that
    layer's input, read with a hook, and ``head`` the layer itself (not registered twice)."""

    def __init__(self, network: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.network = network
        object.__setattr__(self, "head", head)  # a part of ``network``: its parameters are stored once

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        captured = []
        hook = self.head.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
        try:
            self.network(x)
        finally:
            hook.remove()
        return captured[-1]


class Normalized(Classifier):
    """``model`` behind a fixed per-channel standardisation of its input, ``(x - mean) / std``: part of
    the network, so the probe's input gradients stay gradients with respect to the pixels in [0, 1].
    A constant channel (std 0) is only centred."""

    def __init__(self, model: Classifier, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        object.__setattr__(self, "head", model.head)  # a part of ``model``: its parameters are stored once
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        std = torch.tensor(std, dtype=torch.float32)
        self.register_buffer("std", torch.where(std > 0, std, 1.0).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)

    def embed(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.model.embed((x - self.mean) / self.std)


class PoolNet(Classifier):
    """A fast CIFAR network after airbench's (Jordan 2024): a 2x2 stem convolution, then three stages of a 3x3
    convolution, 2x2 max-pooling, batch norm and GELU, and a second 3x3 convolution with batch norm and GELU;
    widths 64-128-128, a last 3x3 max-pool (0.5M parameters). Seven layers deep instead of ResNet-20's 20, it
    keeps two CPU cores busier: about 27M multiply-adds an image against ResNet-20's 41M."""

    def __init__(self, input_shape: tuple[int, ...], n_classes: int, widths: tuple[int, ...] = (64, 128, 128)) -> None:
        super().__init__()
        if len(input_shape) != 3 or input_shape[1:] != (32, 32):
            raise BenchError(f"poolnet takes 32x32 images (channels, 32, 32), got inputs of shape {input_shape}")
        layers: list[nn.Module] = [Conv2d(input_shape[0], 24, kernel_size=2), nn.GELU()]
        channels = 24
        for width in widths:
            layers += [Conv2d(channels, width, kernel_size=3, padding=1, bias=False), nn.MaxPool2d(2),
                       nn.BatchNorm2d(width), nn.GELU(),
                       Conv2d(width, width, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(width), nn.GELU()]
            channels = width
        self.embed = nn.Sequential(*layers, nn.MaxPool2d(3), nn.Flatten())
        self.head = nn.Linear(channels, n_classes)


def as_classifier(network: nn.Module, input_shape: tuple[int, ...], n_classes: int, name: str) -> Classifier:
    """``network`` as the probe needs it, or a clear refusal: it must take inputs of ``input_shape``, give
    ``n_classes`` outputs, and its last ``nn.Linear`` must give its output."""
    if isinstance(network, Classifier):
        return network
    if not isinstance(network, nn.Module):
        raise BenchError(f"model {name!r} built a {type(network).__name__}, not a torch.nn.Module")
    linears = [module for module in network.modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise BenchError(f"model {name!r} has no nn.Linear layer; the harness needs a last nn.Linear (the head) "
                         "whose input is the embedding and whose output the logits")
    model = Wrapped(network, linears[-1])
    with torch.random.fork_rng(devices=[]), torch.no_grad():  # the check draws no number from the run's stream
        x = torch.rand(2, *input_shape)
        was_training = network.training
        network.eval()
        try:
            output = network(x)
        except Exception as error:  # the user's code
            raise BenchError(f"model {name!r} rejects inputs of shape {tuple(input_shape)} ({type(error).__name__}: "
                             f"{error}); build it from the input_shape its factory is given") from None
        same = output.shape == (2, n_classes) and torch.allclose(output, model.head(model.embed(x)), rtol=1e-4, atol=1e-5)
        network.train(was_training)
    if output.shape != (2, n_classes):
        raise BenchError(f"model {name!r} gives {output.shape[-1] if output.ndim == 2 else tuple(output.shape[1:])} "
                         f"outputs for {n_classes} classes; its last nn.Linear must have out_features = n_classes")
    if not same:
        raise BenchError(f"model {name!r}: its output is not the output of its last nn.Linear "
                         f"({type(linears[-1]).__name__}({linears[-1].in_features}, {linears[-1].out_features})); "
                         "end the network with the linear head, without a softmax or other layer after it")
    return model


Factory = Callable[[tuple[int, ...], int], nn.Module]
MODELS: Registry[Factory] = Registry(
    "model", "bench.models", known=lambda names: f"known: {', '.join(sorted(names))}, or module:callable for your own",
    wanted="a function of (input_shape, n_classes) returning an nn.Module")
_in_process: dict[str, Factory] = {}  # factories handed over in Python (``model_name``), by name


def available_models() -> list[str]:
    """The names of the built-in models and of those of installed plugins (entry-point group ``bench.models``), sorted."""
    return sorted(MODELS.entries())


def model_name(factory: Factory) -> str:
    """A name for a factory or class given in Python, registered for this process: its qualified name and a
    digest of its code (source text where Python keeps it, else bytecode), so an edited class is another model."""
    name = f"{getattr(factory, '__module__', 'python')}.{getattr(factory, '__qualname__', type(factory).__name__)}"
    name = f"{name.replace('<', '').replace('>', '')}-{code_digest(factory)}"
    _in_process[name] = factory
    return name


def code_digest(factory: Callable) -> str:
    try:
        code = inspect.getsource(factory)
    except (OSError, TypeError):  # defined where Python keeps no source (a notebook's class, a REPL)
        functions = vars(factory).values() if inspect.isclass(factory) else [factory]
        code = repr([(f.__code__.co_code, f.__code__.co_consts, f.__code__.co_names)
                     for f in functions if hasattr(f, "__code__")])
    return hashlib.sha256(code.encode()).hexdigest()[:8]


@functools.cache
def model_factory(name: str) -> Factory:
    """The factory ``(input_shape, n_classes) -> nn.Module`` of a built-in or an installed model plugin (entry-point
    group ``bench.models``), a ``module:callable`` or a ``path/to/file.py:callable``; found once per process, so a
    user's file is executed once, not once per unit."""
    return _in_process[name] if name in _in_process else MODELS.get(name)


def build_model(name: str, input_shape: tuple[int, ...], n_classes: int,
                normalization: tuple[Sequence[float], Sequence[float]] | None = None) -> Classifier:
    """The named model for inputs of ``input_shape`` and ``n_classes`` classes (a class whose constructor
    needs no argument is built as it is); with ``normalization`` (per-channel means and standard
    deviations), behind that standardisation of its input."""
    factory = model_factory(name)
    try:
        takes_nothing = inspect.isclass(factory) and _takes_no_arguments(factory)
        network = factory() if takes_nothing else factory(input_shape, n_classes)
    except BenchError:
        raise
    except Exception as error:  # the user's code
        raise BenchError(f"model {name!r} could not build a network for inputs of shape {tuple(input_shape)} and "
                         f"{n_classes} classes ({type(error).__name__}: {error}); its factory must take "
                         "(input_shape, n_classes) and return an nn.Module") from None
    model = as_classifier(network, input_shape, n_classes, name)
    return model if normalization is None else Normalized(model, *normalization)


def _takes_no_arguments(factory: Callable) -> bool:
    """Whether ``factory`` can be called with no positional argument (False where its signature is unknown)."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return not any(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters)


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
