"""The output-based OoD scores and GradNorm against pytorch-ood 0.4.0 (and autograd), on an MLP and a ResNet with
batch norm (bench.models.ResNet, resnet20's blocks, one per stage, to stay fast): our scores through the harness
(compute_signals, the scorer's host), the reference on the same model and inputs. The models run in float64, so
that equal numbers agree to 1e-10 and not to float32's rounding."""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from bench import registry
from bench.api import Batch, Checkpoint, validation_rows
from bench.hosts import make_hosts, observed_checkpoints
from bench.models import MLP, Normalized, ResNet
from bench.signals import LOGITS, compute_signals
from conftest import train_and_probe
from oracles import pytorch_ood_detectors

SHAPE, CLASSES = (3, 8, 8), 5
TIGHT = dict(rtol=1e-10, atol=1e-12)  # the same number, computed in float64 in a different order


def build(shape: str) -> torch.nn.Module:
    """A random float64 model in eval mode; the ResNet's batch norms hold running statistics of a few batches."""
    torch.manual_seed(0)
    if shape == "mlp":
        model = MLP(SHAPE, CLASSES, hidden=(32,))
    else:
        model = ResNet(SHAPE, CLASSES, (8, 16), 1, projection=False)
    model = model.double()
    with torch.no_grad():
        model.head.weight.mul_(4)  # logits of a few units: softmaxes neither flat nor one-hot
        if shape == "resnet":
            model.train()
            for _ in range(3):
                model(torch.rand(32, *SHAPE, dtype=torch.float64))
    return model.eval()


@pytest.fixture(scope="module", params=["mlp", "resnet"])
def model(request):
    return build(request.param)


def inputs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images in [0, 1] and labels: the model's class mostly, a random one for every third."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, *SHAPE, generator=generator, dtype=torch.float64), torch.randint(0, CLASSES, (n,),
                                                                                           generator=generator)


def harness(spec: str, model, splits: dict) -> dict[str, np.ndarray]:
    """The scores of each split (name -> (x, labels)) as a run makes them: the signals of compute_signals fed to
    the scorer's host at the one (last) checkpoint; a detector is fitted on the split named train."""
    scorer = registry.create(spec)
    checkpoint = Checkpoint(index=0, epoch=1, total=1)
    (host,) = make_hosts([scorer], {scorer.spec: observed_checkpoints(scorer, [checkpoint])})
    for split, (x, y) in splits.items():
        signals, classes = compute_signals(model, x, {"label": y}, host.needs)
        host.start(split, len(x))
        host.update(Batch(split, torch.arange(len(x)), classes, signals, head=model.head), checkpoint)
        host.end(split)
    return {split: np.asarray(host.scores(scorer, split), dtype=np.float64) for split in splits}


def scores(spec: str, model, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    return harness(spec, model, {"test": (x, y)})["test"]


def logits_of(model, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_energy_equals_pytorch_ood(model, temperature):
    x, y = inputs(40, 1)
    reference = pytorch_ood_detectors().EnergyBased(None, t=temperature).predict_logits(logits_of(model, x))
    np.testing.assert_allclose(scores(f"energy[temperature={temperature}]", model, x, y), reference.numpy(), **TIGHT)


def test_max_logit_equals_pytorch_ood(model):
    x, y = inputs(40, 1)
    reference = pytorch_ood_detectors().MaxLogit(None).predict_logits(logits_of(model, x))
    np.testing.assert_allclose(scores("max-logit", model, x, y), reference.numpy(), **TIGHT)


@pytest.mark.parametrize("gamma, M", [(0.1, 100), (0.5, 3)])
def test_gen_is_the_sum_over_the_top_m_where_pytorch_ood_takes_the_mean(model, gamma, M):
    """pytorch-ood averages the same terms over the top min(M, C) classes, its p clamped to [1e-7, 1 - 1e-7]:
    where no probability is clamped, ours = min(M, C) x its score, to float64 rounding (OpenOOD: -conf)."""
    x, y = inputs(40, 1)
    logits = logits_of(model, x)
    p = logits.softmax(1)
    assert ((p > 1e-7) & (p < 1 - 1e-7)).all()  # the clamping changes nothing here
    reference = pytorch_ood_detectors().GEN(None, gamma=gamma, M=M).predict_logits(logits)
    np.testing.assert_allclose(scores(f"gen[gamma={gamma},M={M}]", model, x, y), min(M, CLASSES) * reference.numpy(),
                               **TIGHT)


def sign_zeros(model, x: torch.Tensor, temperature: float) -> int:
    """How many entries of ODIN's input gradient are exactly 0 (sign +1 in OpenOOD and here, 0 in pytorch-ood)."""
    x = x.clone().requires_grad_(True)
    logits = model(x) / temperature
    loss = torch.nn.functional.cross_entropy(logits, logits.argmax(1), reduction="sum")
    return int((torch.autograd.grad(loss, x)[0] == 0).sum())


@pytest.mark.parametrize("temperature, noise", [(1000, 0.0014), (1, 0.05)])
def test_odin_equals_pytorch_ood(model, temperature, noise):
    x, y = inputs(40, 1)
    assert sign_zeros(model, x, temperature) == 0  # so that the two sign(0) conventions agree
    odin = pytorch_ood_detectors().ODIN(model, eps=noise, temperature=temperature, norm_std=None)
    signal = registry.create(f"odin[temperature={temperature},noise={noise}]").signal
    moved, _ = compute_signals(model, x, {"label": y}, {signal})
    moved_input = pytorch_ood_detectors().odin_preprocessing(model, x, eps=noise, temperature=temperature)
    expected = logits_of(model, moved_input)
    torch.testing.assert_close(moved[signal], expected, **TIGHT)
    assert (moved[signal] - moved[LOGITS]).abs().max() > 1e-4  # the step moved the logits far beyond the tolerance
    np.testing.assert_allclose(scores(f"odin[temperature={temperature},noise={noise}]", model, x, y),
                               odin.predict(x).numpy(), **TIGHT)


def test_odin_noise_in_pixels_is_openoods_noise_over_std_on_normalised_inputs(model):
    """Our model takes pixels behind a normalisation layer; pytorch-ood's ODIN with ``norm_std`` (OpenOOD's
    convention) takes normalised inputs and divides the step by the std: the same perturbed image."""
    mean, std = [0.49, 0.48, 0.45], [0.25, 0.24, 0.26]
    wrapped = Normalized(model, mean, std).double().eval()
    x, y = inputs(40, 1)
    normalised = (x - wrapped.mean) / wrapped.std
    assert sign_zeros(wrapped, x, 1000) == 0
    reference = pytorch_ood_detectors().ODIN(model, eps=0.0014, temperature=1000, norm_std=std).predict(normalised)
    np.testing.assert_allclose(scores("odin", wrapped, x, y), reference.numpy(), rtol=1e-9, atol=1e-12)


def test_odin_variants_written_differently_share_one_signal_whose_cost_is_counted(model):
    specs = ["odin", "odin[temperature=1000]", "odin[temperature=1000.0,noise=0.0014]"]
    assert len({registry.create(spec).signal for spec in specs}) == 1
    assert len({registry.create(spec).spec for spec in specs}) == 1
    scorer = registry.create("odin[temperature=10]")
    x, y = inputs(8, 1)
    done = []
    signals, _ = compute_signals(model, x, {"label": y}, scorer.needs, on_signal=done.append)
    assert scorer.needs == {scorer.signal} and done == [LOGITS, scorer.signal] and scorer.signal in signals


def fit_reference(logits: torch.Tensor, labels: torch.Tensor):
    """pytorch-ood's TemperatureScaling, started from OpenOOD's T = 1.5 (its own start is 1.0)."""
    reference = pytorch_ood_detectors().TemperatureScaling(None)
    with torch.no_grad():
        reference.t.fill_(1.5)
    return reference.fit_logits(logits, labels)


def test_temp_scaling_equals_pytorch_ood_fitted_on_the_same_validation_rows(model):
    """Fitted on the training split's validation rows; pytorch-ood fits T in float32, so T agrees to 1e-5."""
    (x_train, y_train), (x_test, y_test) = inputs(60, 1), inputs(40, 2)
    y_train = torch.where(torch.arange(60) % 3 == 0, y_train, logits_of(model, x_train).argmax(1))
    ours = harness("temp-scaling[val_size=40]", model, {"train": (x_train, y_train), "test": (x_test, y_test)})
    rows = validation_rows(60, 40)
    assert len(rows) == 40
    train_logits = logits_of(model, x_train).float()  # the detector's host keeps its features in float32
    reference = fit_reference(train_logits[rows], y_train[rows])
    scorer = registry.create("temp-scaling[val_size=40]").fit(train_logits.numpy(), y_train.numpy())
    assert abs(scorer.temperature_ - 1.5) > 1e-3  # the fit moved T
    assert scorer.temperature_ == pytest.approx(reference.t.item(), rel=1e-5)
    expected = reference.predict_logits(logits_of(model, x_test).float()).detach().numpy()
    np.testing.assert_allclose(ours["test"], expected, rtol=0, atol=1e-5)
    assert spearmanr(ours["test"], expected).statistic >= 0.9999


def test_temp_scaling_reads_only_its_validation_rows_and_refits_bit_for_bit():
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(60, CLASSES)) * 3, rng.integers(0, CLASSES, 60)
    first = registry.create("temp-scaling[val_size=40]").fit(logits, labels).temperature_
    assert registry.create("temp-scaling[val_size=40]").fit(logits, labels).temperature_ == first
    others = np.setdiff1d(np.arange(60), validation_rows(60, 40))
    changed = labels.copy()
    changed[others] = (changed[others] + 1) % CLASSES
    assert registry.create("temp-scaling[val_size=40]").fit(logits, changed).temperature_ == first
    assert registry.create("temp-scaling[val_size=30]").fit(logits, changed).temperature_ != first


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_gradnorm_equals_pytorch_ood_on_the_head_weight_and_a_per_example_autograd_loop(model, temperature):
    """pytorch-ood averages the cross-entropy over the classes where OpenOOD sums it: its score is ours / C."""
    x, y = inputs(24, 1)
    ours = scores(f"gradnorm[temperature={temperature}]", model, x, y)
    reference = pytorch_ood_detectors().GradNorm(model, param_filter=lambda name: name == "head.weight",
                                                 temperature=temperature).predict(x)
    np.testing.assert_allclose(ours / CLASSES, reference.numpy(), **TIGHT)
    norms = []
    for example in x:
        loss = -torch.log_softmax(model(example[None]) / temperature, dim=1).sum()
        (gradient,) = torch.autograd.grad(loss, model.head.weight)
        norms.append(gradient.abs().sum().item())
    np.testing.assert_allclose(ours, -np.array(norms), **TIGHT)


NAMES = {"energy": "output-based", "max-logit": "output-based", "gen": "output-based", "odin": "output-based",
         "temp-scaling": "output-based", "gradnorm": "gradient"}


def test_the_scores_are_builtin_scorers_of_their_family():
    assert set(NAMES) <= set(registry.builtin())
    assert {name: registry.create(name).family for name in NAMES} == NAMES


@pytest.mark.parametrize("name, params, parameter", [
    ("energy", {"temperature": 0}, "temperature"),
    ("gen", {"gamma": 0}, "gamma"),
    ("gen", {"M": 0}, "M"),
    ("odin", {"temperature": -1}, "temperature"),
    ("odin", {"noise": -0.1}, "noise"),
    ("temp-scaling", {"val_size": 0}, "val_size"),
    ("temp-scaling", {"features": "embedding"}, "features"),
    ("gradnorm", {"temperature": 0}, "temperature"),
])
def test_bad_parameters_are_refused_naming_them(name, params, parameter):
    with pytest.raises(ValueError, match=rf"{name}: {parameter}="):
        registry.get(name)(**params)


def test_the_scores_run_through_the_probe_of_a_trained_model(two_blobs):
    """The whole path: a run's probe computes every signal these scores need and fits temp-scaling on its train
    split; every score is finite, and with two classes (max softmax = sigmoid(|z1 - z2| / T), monotone whatever T)
    temp-scaling ranks as max-softmax does."""
    specs = [*NAMES, "max-softmax"]
    table, _ = train_and_probe(*two_blobs, [registry.create(spec) for spec in specs], epochs=2)
    for spec in specs:
        assert np.isfinite(table["train"][spec]).all(), spec
    assert spearmanr(table["train"]["temp-scaling"], table["train"]["max-softmax"]).statistic > 0.9999
