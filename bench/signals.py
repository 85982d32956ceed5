"""The signals the probe computes for a batch, and the one function that computes them.

A ``Signal`` is a typed value whose stable string form is itself: ``logits``, ``embedding``,
``pixels``, ``param_grad_norm``, ``heldout_logits``, ``input_grad[of=...,cls=...]`` or
``odin_logits[temperature=...,noise=...]``. It subclasses ``str`` so
that what scorers declare (``needs = {LOGITS}``, or the plain text ``"logits"``), the keys
they read (``batch[LOGITS]``) and what results store are one and the same; its parts are
read as ``kind``, ``of`` and ``cls``, never by matching substrings.

``compute_signals`` is a pure function of (model, inputs, classes, the signals needed): one
forward pass, one backward pass per input gradient (sharing the forward graph), and the
parameter-gradient norms when asked for (off the same forward pass where the model's layers allow;
their backward pass then gives the target probability's input gradient too). ODIN's perturbed
input costs one more backward and one more forward pass per (temperature, noise).
``heldout_logits`` is no function of the model at hand: the probe computes it once per unit from
the cross-fitted models (``bench.probe``) and adds it to the batches of the last checkpoint.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Collection

import torch
from torch import nn

from bench.errors import BenchError
from bench.gradients import layer_norms, param_grad_norms, readable_layers, recording
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
    "heldout_logits": "(n, classes) logits of a model that never trained on the example: on the training split, the "
                      "cross-fitting model whose training left out the example's fold (config key cross_fit); "
                      "elsewhere the final model's. Given at the last checkpoint only",
    "odin_logits": "(n, classes) the logits of the input moved by `noise` (pixel units, inputs in [0, 1]) against the "
                   "sign of the gradient of the cross-entropy of logits / `temperature` at the predicted class (ODIN)",
}
PARAMETERS = {"input_grad": ("of", "cls"), "odin_logits": ("temperature", "noise")}  # the kinds that take parameters


@functools.cache
def _parts(name: str) -> tuple[str, tuple[tuple[str, object], ...]]:
    """(kind, its parameters in order) of a signal's name, checked; read once per name."""
    try:
        kind, params = parse_spec(name)
    except BenchError:
        kind, params = name, {}
    expected = PARAMETERS.get(kind, ())
    if kind not in KINDS or set(params) != set(expected):
        grammars = [format_spec("input_grad", {"of": "|".join(OUTPUTS), "cls": "|".join(CLASSES)}),
                    format_spec("odin_logits", {"temperature": "T", "noise": "E"})]
        known = [k for k in KINDS if k not in PARAMETERS] + grammars
        raise ValueError(f"{name!r} is not a signal; known: {', '.join(known)}")
    if kind == "input_grad" and params["of"] not in OUTPUTS:
        raise ValueError(f"input_grad: of={params['of']!r} is not one of {', '.join(OUTPUTS)}")
    if kind == "input_grad" and params["cls"] not in CLASSES:
        raise ValueError(f"input_grad: cls={params['cls']!r} is not one of {', '.join(CLASSES)}")
    if kind == "odin_logits":
        for key in expected:
            if isinstance(params[key], bool) or not isinstance(params[key], (int, float)) or params[key] < 0:
                raise ValueError(f"odin_logits: {key}={params[key]!r} is not a number of 0 or more")
        if params["temperature"] == 0:
            raise ValueError("odin_logits: temperature=0 divides by zero; give a positive temperature, e.g. 1000")
    return kind, tuple((key, params[key]) for key in expected)


class Signal(str):
    """A signal by its stable name; ``Signal("logits")``, or ``input_grad(of, cls)`` for an input gradient.

    A ValueError names the known signals when the name is none of them.
    """

    __slots__ = ()

    def __new__(cls, name: str) -> Signal:
        kind, params = _parts(str(name))
        return super().__new__(cls, format_spec(kind, dict(params)))

    @property
    def kind(self) -> str:
        return _parts(self)[0]

    @property
    def params(self) -> dict[str, object]:
        return dict(_parts(self)[1])

    @property
    def of(self) -> str | None:
        """For an input gradient: what it differentiates, the class's ``logit`` or ``prob``."""
        return self.params.get("of")

    @property
    def cls(self) -> str | None:
        """For an input gradient: which class, a key of ``CLASSES``."""
        return self.params.get("cls")


LOGITS = Signal("logits")
EMBEDDING = Signal("embedding")
PIXELS = Signal("pixels")
PARAM_GRAD_NORM = Signal("param_grad_norm")
HELDOUT_LOGITS = Signal("heldout_logits")


def input_grad(of: str = "logit", cls: str = "target") -> Signal:
    """The signal ``(n, *input_shape)``: the gradient w.r.t. the input of class ``cls``'s logit or probability."""
    return Signal(format_spec("input_grad", {"of": of, "cls": cls}))


def odin_logits(temperature: float, noise: float) -> Signal:
    """The signal ``(n, classes)``: ODIN's logits, of the input perturbed by ``noise`` at ``temperature``."""
    return Signal(format_spec("odin_logits", {"temperature": temperature, "noise": noise}))


TARGET_PROB_GRAD = input_grad("prob", "target")  # VoG's default: shares the parameter-gradient norms' backward pass

# The signals without free parameters (ODIN's logits take numbers, so ``Signal(name)`` is the test of a name).
SIGNALS = (LOGITS, EMBEDDING, PIXELS, PARAM_GRAD_NORM, HELDOUT_LOGITS,
           *(input_grad(of, cls) for of in OUTPUTS for cls in CLASSES))


def perturbed_logits(model: nn.Module, x: torch.Tensor, temperature: float, noise: float) -> torch.Tensor:
    """ODIN (Liang et al. 2018): the logits of ``x - noise * sign(grad_x CE(f(x) / T, argmax))``.

    The sign of a zero gradient is taken as +1, as OpenOOD's ``torch.ge(grad, 0)`` does. The
    model's input is the pixels in [0, 1] (a normalisation is its first layer), so ``noise`` is
    in pixel units: OpenOOD's 0.0014 divided by the channel std is applied to normalised inputs,
    the same step in pixels."""
    with torch.enable_grad():
        inputs = x.detach().requires_grad_(True)
        logits = model.head(model.embed(inputs)) / temperature
        loss = torch.nn.functional.cross_entropy(logits, logits.argmax(1), reduction="sum")
        gradient = torch.autograd.grad(loss, inputs)[0]
    with torch.no_grad():
        moved = x.detach() - noise * torch.where(gradient >= 0, 1.0, -1.0).to(x.dtype)
        return model.head(model.embed(moved))


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

    The parameter-gradient norms of a model of Linear and plain Conv2d layers are read off the same
    forward pass, by one backward pass of the summed cross-entropy at ``target``; that pass also gives
    the input gradient of the target's probability, ``-p_target`` times the cross-entropy's, which
    then takes no backward pass of its own (and is charged the shared one). Other models' norms come
    from ``grad_norms``.
    """
    gradients = sorted(signal for signal in map(Signal, needed) if signal.kind == "input_grad")
    layers = readable_layers(model) if PARAM_GRAD_NORM in needed else None
    shared = TARGET_PROB_GRAD if layers and TARGET_PROB_GRAD in gradients else None
    separate = [signal for signal in gradients if signal != shared]
    done = on_signal or (lambda signal: None)
    inputs = x.detach().requires_grad_(True) if gradients else x
    norms = None
    with recording(model, layers) if layers else contextlib.nullcontext({}) as record, \
            torch.set_grad_enabled(bool(gradients or layers)):
        embedding = model.embed(inputs)
        logits = model.head(embedding)
        done(LOGITS)
        classes = {**classes, "target": classes["target"] if "target" in classes else logits.argmax(1)}
        signals = {}
        for signal in separate:
            values = logits.softmax(1) if signal.of == "prob" else logits
            output = values.gather(1, classes[signal.cls][:, None]).sum()
            retain = bool(layers) or signal != separate[-1]
            signals[signal] = torch.autograd.grad(output, inputs, retain_graph=retain)[0]
            done(signal)
        if layers:
            loss = torch.nn.functional.cross_entropy(logits, classes["target"], reduction="sum")
            grads = torch.autograd.grad(loss, [record[layer][1] for layer in layers] + ([inputs] if shared else []))
            if shared:
                p_target = logits.detach().softmax(1).gather(1, classes["target"][:, None])
                signals[shared] = -p_target.reshape(-1, *[1] * (inputs.ndim - 1)) * grads[-1]
                done(shared)
            with contextlib.suppress(NotImplementedError):  # layers it cannot read: ``grad_norms`` below
                norms = layer_norms(layers, record, grads[:len(layers)])
    signals[LOGITS] = logits.detach()
    if EMBEDDING in needed:
        signals[EMBEDDING] = embedding.detach()
    if PIXELS in needed:
        signals[PIXELS] = inputs.detach()
    if PARAM_GRAD_NORM in needed:  # timed from the last signal done, so that it is charged the layers' norms above
        signals[PARAM_GRAD_NORM] = norms if norms is not None else grad_norms(model, inputs.detach(), classes["target"])
        done(PARAM_GRAD_NORM)
    for signal in sorted(signal for signal in map(Signal, needed) if signal.kind == "odin_logits"):
        signals[signal] = perturbed_logits(model, x, **signal.params)
        done(signal)
    return signals, classes
