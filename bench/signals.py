"""The signals the probe computes for a batch, and the one function that computes them.

A ``Signal`` is a typed value whose stable string form is itself: ``logits``, ``embedding``,
``pixels``, ``param_grad_norm`` or ``input_grad[of=...,cls=...]``. It subclasses ``str`` so
that what scorers declare (``needs = {LOGITS}``, or the plain text ``"logits"``), the keys
they read (``batch[LOGITS]``) and what results store are one and the same; its parts are
read as ``kind``, ``of`` and ``cls``, never by matching substrings.

``compute_signals`` is a pure function of (model, inputs, classes, the signals needed): one
forward pass, one backward pass per input gradient (sharing the forward graph), and the
parameter-gradient norms when asked for.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection

import torch
from torch import nn

from bench.errors import BenchError
from bench.gradients import param_grad_norms
from bench.specs import format_spec, parse_spec

# The class a label-dependent signal refers to, per example:
CLASSES = {
    "target": "the label where labels are trusted, else the class predicted at this checkpoint",
    "final": "the label where labels are trusted, else the class the final model predicts",
    "label": "the split's own label, always (an oracle on OoD splits)",
}
OUTPUTS = ("logit", "prob")  # what an input gradient differentiates: the class's logit or its softmax probability
KINDS = {
    "logits": "(n, classes) pre-softmax outputs",
    "embedding": "(n, d) the input of the last linear layer",
    "pixels": "(n, *input_shape) the input itself, scaled to [0, 1]",
    "param_grad_norm": "(n,) L2 norm of the cross-entropy's gradient over all parameters",
    "input_grad": "(n, *input_shape) the gradient w.r.t. the input of class `cls`'s logit or probability (`of`)",
}


@functools.cache
def _parts(name: str) -> tuple[str, str | None, str | None]:
    """(kind, of, cls) of a signal's name, checked; read once per name."""
    try:
        kind, params = parse_spec(name)
    except BenchError:
        kind, params = name, {}
    if kind not in KINDS or (kind != "input_grad" and params) or (kind == "input_grad" and set(params) != {"of", "cls"}):
        grammar = format_spec("input_grad", {"of": "|".join(OUTPUTS), "cls": "|".join(CLASSES)})
        raise ValueError(f"{name!r} is not a signal; known: {', '.join(k for k in KINDS if k != 'input_grad')}, {grammar}")
    if kind != "input_grad":
        return kind, None, None
    if params["of"] not in OUTPUTS:
        raise ValueError(f"input_grad: of={params['of']!r} is not one of {', '.join(OUTPUTS)}")
    if params["cls"] not in CLASSES:
        raise ValueError(f"input_grad: cls={params['cls']!r} is not one of {', '.join(CLASSES)}")
    return kind, params["of"], params["cls"]


class Signal(str):
    """A signal by its stable name; ``Signal("logits")``, or ``input_grad(of, cls)`` for an input gradient.

    A ValueError names the known signals when the name is none of them.
    """

    __slots__ = ()

    def __new__(cls, name: str) -> Signal:
        kind, of, target = _parts(str(name))
        return super().__new__(cls, format_spec(kind, {"of": of, "cls": target} if of else {}))

    @property
    def kind(self) -> str:
        return _parts(self)[0]

    @property
    def of(self) -> str | None:
        """For an input gradient: what it differentiates, the class's ``logit`` or ``prob``."""
        return _parts(self)[1]

    @property
    def cls(self) -> str | None:
        """For an input gradient: which class, a key of ``CLASSES``."""
        return _parts(self)[2]


LOGITS = Signal("logits")
EMBEDDING = Signal("embedding")
PIXELS = Signal("pixels")
PARAM_GRAD_NORM = Signal("param_grad_norm")


def input_grad(of: str = "logit", cls: str = "target") -> Signal:
    """The signal ``(n, *input_shape)``: the gradient w.r.t. the input of class ``cls``'s logit or probability."""
    return Signal(format_spec("input_grad", {"of": of, "cls": cls}))


SIGNALS = (LOGITS, EMBEDDING, PIXELS, PARAM_GRAD_NORM, *(input_grad(of, cls) for of in OUTPUTS for cls in CLASSES))


def compute_signals(
    model: nn.Module,
    x: torch.Tensor,
    classes: dict[str, torch.Tensor],
    needed: Collection[Signal],
    grad_norms: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] = param_grad_norms,
    on_signal: Callable[[Signal], None] | None = None,
) -> tuple[dict[Signal, torch.Tensor], dict[str, torch.Tensor]]:
    """The ``needed`` signals of the model inputs ``x``, with ``LOGITS`` always (the forward pass is made anyway).

    ``model`` is in eval mode (examples independent, so the gradient of a sum is each example's
    gradient) and has an ``embed`` and a ``head``. ``classes`` holds ``label``, ``final`` when a
    signal refers to it, and ``target`` where labels are trusted; otherwise ``target`` is the class
    predicted here. Returns the signals and the classes they refer to, ``target`` included.
    ``on_signal(signal)`` is called as each costly one is done (``LOGITS``: the forward pass), to time it.
    """
    gradients = sorted(signal for signal in map(Signal, needed) if signal.kind == "input_grad")
    done = on_signal or (lambda signal: None)
    inputs = x.detach().requires_grad_(True) if gradients else x
    with torch.set_grad_enabled(bool(gradients)):
        embedding = model.embed(inputs)
        logits = model.head(embedding)
        done(LOGITS)
        classes = {**classes, "target": classes["target"] if "target" in classes else logits.argmax(1)}
        signals = {}
        for signal in gradients:
            values = logits.softmax(1) if signal.of == "prob" else logits
            output = values.gather(1, classes[signal.cls][:, None]).sum()
            signals[signal] = torch.autograd.grad(output, inputs, retain_graph=signal != gradients[-1])[0]
            done(signal)
    signals[LOGITS] = logits.detach()
    if EMBEDDING in needed:
        signals[EMBEDDING] = embedding.detach()
    if PIXELS in needed:
        signals[PIXELS] = inputs.detach()
    if PARAM_GRAD_NORM in needed:
        signals[PARAM_GRAD_NORM] = grad_norms(model, inputs.detach(), classes["target"])
        done(PARAM_GRAD_NORM)
    return signals, classes
