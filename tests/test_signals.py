"""The signals, computed alone: a linear model's input gradients in closed form, a small MLP's against autograd
one example at a time, and the signal names as typed values."""

import pytest
import torch
from torch import nn

from bench.gradients import param_grad_norms
from bench.models import MLP
from bench.signals import (EMBEDDING, LOGITS, PARAM_GRAD_NORM, PIXELS, SIGNALS, Signal, compute_signals, input_grad,
                           odin_logits)

N, FEATURES, N_CLASSES = 7, 3, 4
INPUT_GRADS = [signal for signal in SIGNALS if signal.kind == "input_grad"]


@pytest.fixture
def case():
    torch.manual_seed(0)
    x = torch.randn(N, FEATURES)
    label, final = torch.randint(0, N_CLASSES, (N,)), torch.randint(0, N_CLASSES, (N,))
    return x, label, final


def test_input_gradients_of_a_linear_model_equal_their_closed_form(case):
    """logits = W x + b: d z_c / dx = W_c, and d p_c / dx = p_c (W_c - sum_k p_k W_k)."""
    x, label, final = case
    model = MLP((FEATURES,), N_CLASSES, hidden=()).eval()
    W, b = model.head.weight.detach(), model.head.bias.detach()
    signals, classes = compute_signals(model, x, {"label": label, "final": final}, INPUT_GRADS)
    p = torch.softmax(x @ W.T + b, dim=1)
    torch.testing.assert_close(classes["target"], (x @ W.T + b).argmax(1))  # untrusted labels: the predicted class
    for signal in INPUT_GRADS:
        c = classes[signal.cls]
        expected = W[c] if signal.of == "logit" else p.gather(1, c[:, None]) * (W[c] - p @ W)
        torch.testing.assert_close(signals[signal], expected, msg=str(signal))


def test_every_signal_of_an_mlp_equals_autograd_on_each_example_alone(case):
    x, label, final = case
    torch.manual_seed(1)
    model = MLP((FEATURES,), N_CLASSES, hidden=(5,)).eval()
    classes = {"label": label, "final": final, "target": label}  # trusted labels: the target is the label
    timed = []
    signals, got = compute_signals(model, x, classes, set(SIGNALS), param_grad_norms, timed.append)
    shared = input_grad("prob", "target")  # off the norms' backward pass, reported with it
    assert timed == [LOGITS, *sorted(set(INPUT_GRADS) - {shared}), shared, PARAM_GRAD_NORM]  # as each is done
    assert got["target"] is label
    torch.testing.assert_close(signals[LOGITS], model(x))
    torch.testing.assert_close(signals[EMBEDDING], model.embed(x))
    torch.testing.assert_close(signals[PIXELS], x)
    for i in range(N):
        xi = x[i:i + 1].clone().requires_grad_(True)
        logits = model(xi)[0]
        for signal in INPUT_GRADS:
            output = (logits.softmax(0) if signal.of == "prob" else logits)[classes[signal.cls][i]]
            (expected,) = torch.autograd.grad(output, xi, retain_graph=True)
            torch.testing.assert_close(signals[signal][i], expected[0], msg=f"{signal}, example {i}")
        loss = nn.functional.cross_entropy(model(x[i:i + 1]), label[i:i + 1])
        norm = torch.sqrt(sum(g.pow(2).sum() for g in torch.autograd.grad(loss, list(model.parameters()))))
        torch.testing.assert_close(signals[PARAM_GRAD_NORM][i], norm)


def test_only_the_signals_needed_are_computed_and_the_inputs_are_left_alone(case):
    x, label, _ = case
    model = MLP((FEATURES,), N_CLASSES, hidden=(5,)).eval()
    timed = []
    signals, _ = compute_signals(model, x, {"label": label}, {"logits"}, on_signal=timed.append)  # a name works too
    assert set(signals) == {LOGITS} and timed == [LOGITS]
    assert not signals[LOGITS].requires_grad
    compute_signals(model, x, {"label": label}, {input_grad()})
    assert not x.requires_grad and x.grad is None


def test_a_signal_is_a_typed_value_whose_string_is_its_stable_name():
    signal = Signal("input_grad[cls=final,of=prob]")
    assert (signal.kind, signal.of, signal.cls) == ("input_grad", "prob", "final")
    assert signal == input_grad(of="prob", cls="final") == "input_grad[of=prob,cls=final]"  # one canonical form
    assert (LOGITS.kind, LOGITS.of, LOGITS.cls) == ("logits", None, None) and LOGITS == "logits"
    assert len(set(SIGNALS)) == 5 + 2 * 3


@pytest.mark.parametrize("name, message", [
    ("logit", "'logit' is not a signal; known: logits, embedding"),
    ("input_grad", "is not a signal"),
    ("logits[of=prob]", "is not a signal"),
    ("input_grad[of=loss,cls=target]", "of='loss' is not one of logit, prob"),
    ("input_grad[of=logit,cls=truth]", "cls='truth' is not one of target, final, label"),
])
def test_a_name_that_is_no_signal_is_refused_with_the_known_ones(name, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        Signal(name)


def test_a_lenets_signals_with_the_norms_sharing_their_pass_equal_those_taken_apart():
    """LeNet-5: the norms and the target probability's input gradient read off one forward and one backward pass
    equal the norms of ``torch.func.vmap`` and the gradient taken alone, to float32 rounding."""
    from bench.models import build_model

    torch.manual_seed(0)
    model = build_model("lenet", (1, 28, 28), N_CLASSES).eval().requires_grad_(False)
    x, label = torch.rand(N, 1, 28, 28), torch.randint(0, N_CLASSES, (N,))
    shared = input_grad("prob", "target")
    together, _ = compute_signals(model, x, {"label": label, "target": label}, {shared, input_grad(), PARAM_GRAD_NORM})
    apart, _ = compute_signals(model, x, {"label": label, "target": label}, {shared})
    torch.testing.assert_close(together[shared], apart[shared], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(together[PARAM_GRAD_NORM], param_grad_norms(model, x, label, "vmap"), rtol=1e-5, atol=0)
    assert not any(p.requires_grad for p in model.parameters())


def test_the_norms_read_off_the_layers_are_charged_to_them_not_to_the_odin_pass_after_them(case):
    """Each signal is timed from the one done before it: the layers' norms must be done before ODIN's own pass."""
    x, label, final = case
    model = MLP((FEATURES,), N_CLASSES, hidden=(5,)).eval()
    timed = []
    odin = odin_logits(1000.0, 0.0014)
    compute_signals(model, x, {"label": label, "target": label}, {LOGITS, PARAM_GRAD_NORM, odin}, param_grad_norms,
                    timed.append)
    assert timed == [LOGITS, PARAM_GRAD_NORM, odin]
