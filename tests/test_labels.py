"""Label-quality scores against cleanlab 2.9.0 called directly and against their closed forms; TracIn against a
per-example autograd loop; the learning rate of each checkpoint against torch's schedulers. On an MLP and a ResNet
with BatchNorm, through the probe as a unit runs it."""

import copy
import math
import warnings

import numpy as np
import pytest
import torch
from cleanlab.rank import get_label_quality_scores
from torch.nn import functional
from torch.optim import lr_scheduler

from bench import registry
from bench.api import LOGITS, Batch, Checkpoint
from bench.config import Recipe
from bench.hosts import CheckpointHost, observed_checkpoints
from bench.models import MLP, ResNet
from bench.probe import Folds, Probe, ProbeSplit
from bench.training import train
from bench.unit import checkpoints_of

LABEL_SCORES = {"self-confidence": "self_confidence", "normalized-margin": "normalized_margin",
                "confidence-weighted-entropy": "confidence_weighted_entropy"}
CLASSES = 4
LR = 0.05


def closed_forms(probs, target):
    """ood-anchors.md §3.1, each as 1 - cleanlab's quality: P[k]; (P[k] - max_{k' != k} P[k'] + 1) / 2;
    x = [H(P) / log K] / max(P[k], 1e-6), log(x + 1) / max(x, 1e-6)."""
    rows = np.arange(len(target))
    p_k = probs[rows, target]
    others = probs.copy()
    others[rows, target] = -np.inf
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(probs > 0, probs * np.log(probs), 0.0).sum(1) / np.log(probs.shape[1])
    x = entropy / np.maximum(p_k, 1e-6)
    return {"self-confidence": 1 - p_k,
            "normalized-margin": 1 - (p_k - others.max(1) + 1) / 2,
            "confidence-weighted-entropy": 1 - np.log(x + 1) / np.maximum(x, 1e-6)}


def data(name):
    """Inputs of the model's shape and labels in {0, 1, 3} (class 2 never a label), 1 in 6 of them flipped."""
    rng = np.random.default_rng(0)
    n = 48 if name == "mlp" else 12
    labels = rng.choice([0, 1, 3], n)
    if name == "mlp":
        inputs = (rng.normal(size=(n, 6)) + 2 * labels[:, None]).astype(np.float32)
    else:
        inputs = rng.integers(0, 256, (n, 3, 8, 8)).astype(np.uint8)
        inputs[np.arange(n), labels % 3] //= 2  # a channel darker per class: something to learn
    noisy = labels.copy()
    noisy[::6] = np.where(labels[::6] == 0, 1, 0)
    return torch.as_tensor(inputs), torch.as_tensor(noisy)


def new_model(name):
    """An MLP, or a two-stage ResNet of one basic block each (BatchNorm throughout), small for the autograd loop."""
    if name == "mlp":
        return MLP((6,), CLASSES, hidden=(16,))
    return ResNet((3, 8, 8), CLASSES, (8, 16), 1, projection=True)


def model_input(name, x):
    return x.float() if name == "mlp" else x.float() / 255


@pytest.fixture(scope="module", params=["mlp", "resnet"])
def probed(request):
    """A model trained 2 epochs on the cosine schedule (checkpoints at initialisation and after each epoch), the lr
    of every optimizer step as SGD saw it, and the probe of the label scores and TracIn on a trusted training split
    (noisy labels) and an untrusted test split."""
    name = request.param
    inputs, labels = data(name)
    shape = tuple(inputs.shape[1:])
    torch.manual_seed(0)
    model = new_model(name)
    recipe = Recipe(epochs=2, batch_size=16 if name == "mlp" else 4, lr=LR, momentum=0.9, weight_decay=5e-4,
                    schedule="cosine", checkpoint_at_init=True)
    seen, steps_at = [], []  # the lr of each optimizer step; the steps done at each checkpoint
    step = torch.optim.SGD.step

    def recording(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.optim.SGD, "step", recording)
        states = []
        for checkpoint in train(model, inputs, labels, recipe, torch.Generator().manual_seed(0), shape):
            states.append((checkpoint, copy.deepcopy(model.state_dict())))
            steps_at.append(len(seen))
    test = inputs[:10] if name == "mlp" else inputs[:4].flip(3)
    splits = {"train": ProbeSplit(inputs, labels, trusted_labels=True),
              "test": ProbeSplit(test, torch.zeros(len(test), dtype=torch.int64), trusted_labels=False)}
    probe = Probe(splits, [registry.create(spec) for spec in [*LABEL_SCORES, "tracin"]], shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a ResNet's BatchNorm: per-example gradients by vmap
        table = probe.run(model, states)
    assert not probe.failures
    return dict(name=name, shape=shape, splits=splits, states=states, table=table, recipe=recipe, seen=seen,
                steps_at=steps_at)


def test_label_scores_are_cleanlabs_on_the_final_softmax_and_their_closed_forms(probed):
    model = new_model(probed["name"])
    model.load_state_dict(probed["states"][-1][1])
    model.eval()
    for split, data_ in probed["splits"].items():
        with torch.no_grad():
            logits = model(model_input(probed["name"], data_.inputs))
        probs = torch.softmax(logits.double(), dim=1).numpy()
        target = data_.labels.numpy() if split == "train" else logits.argmax(1).numpy()
        assert 2 not in target  # a class the targets never name
        expected = closed_forms(probs, target)
        for spec, method in LABEL_SCORES.items():
            ours = probed["table"][split][f"{spec}[probs=in-sample]"]
            reference = 1 - get_label_quality_scores(target, probs, method=method)
            np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-12, err_msg=f"{spec} on {split}")
            np.testing.assert_allclose(ours, expected[spec], rtol=1e-12, atol=1e-12, err_msg=f"{spec} on {split}")
            assert np.ptp(ours) > 1e-3  # scores that tell examples apart, far beyond the tolerance


def test_cross_fit_scores_are_cleanlabs_on_the_softmax_of_the_model_that_left_each_fold_out(probed):
    """Two folds, each scored by its own model (here the checkpoints after epochs 1 and 2); the test split by the
    final model against its predicted class, as in-sample."""
    name, train_split = probed["name"], probed["splits"]["train"]
    fold = np.arange(len(train_split)) % 2
    models = [probed["states"][1][1], probed["states"][2][1]]
    probe = Probe(probed["splits"], [registry.create(f"{spec}[probs=cross-fit]") for spec in LABEL_SCORES],
                  probed["shape"])
    table = probe.run(new_model(name), probed["states"], folds=Folds(fold, models))
    assert not probe.failures
    model = new_model(name).eval()
    logits = torch.empty(len(train_split), CLASSES)
    with torch.no_grad():
        for k, state in enumerate(models):
            model.load_state_dict(state)
            logits[fold == k] = model(model_input(name, train_split.inputs[fold == k]))
    probs = torch.softmax(logits.double(), dim=1).numpy()
    target = train_split.labels.numpy()
    expected = closed_forms(probs, target)
    for spec, method in LABEL_SCORES.items():
        ours = table["train"][f"{spec}[probs=cross-fit]"]
        np.testing.assert_allclose(ours, 1 - get_label_quality_scores(target, probs, method=method), rtol=0,
                                   atol=1e-12, err_msg=spec)
        np.testing.assert_allclose(ours, expected[spec], rtol=1e-12, atol=1e-12, err_msg=spec)
        assert np.abs(ours - probed["table"]["train"][f"{spec}[probs=in-sample]"]).max() > 1e-3  # other probabilities
        np.testing.assert_array_equal(table["test"][f"{spec}[probs=cross-fit]"],
                                      probed["table"]["test"][f"{spec}[probs=in-sample]"])


def test_tracin_is_the_lr_weighted_sum_of_squared_per_example_gradient_norms(probed):
    """For each checkpoint and example alone: loss.backward, the squared norm of every parameter's gradient, times
    the lr SGD stepped with just before the checkpoint (the first step's at initialisation); summed."""
    seen, name = probed["seen"], probed["name"]
    for split, data_ in probed["splits"].items():
        expected = np.zeros(len(data_))
        for (checkpoint, state), steps in zip(probed["states"], probed["steps_at"]):
            model = new_model(name)
            model.load_state_dict(state)
            model.eval()
            lr = seen[max(steps - 1, 0)]
            assert checkpoint.lr == lr
            x = model_input(name, data_.inputs)
            with torch.no_grad():
                target = data_.labels if split == "train" else model(x).argmax(1)
            for i in range(len(data_)):
                model.zero_grad()
                functional.cross_entropy(model(x[i:i + 1]), target[i:i + 1]).backward()
                expected[i] += lr * sum(p.grad.double().pow(2).sum().item() for p in model.parameters())
        np.testing.assert_allclose(probed["table"][split]["tracin"], expected, rtol=1e-5, err_msg=split)
    assert len({checkpoint.lr for checkpoint, _ in probed["states"]}) == 3  # each checkpoint weighed by its own rate


def feed(scorer, logits, target):
    """A CheckpointScore's scores of one split of the given logits at the last checkpoint, as the probe hosts it."""
    schedule = [Checkpoint(index=0, epoch=1, total=1)]
    host = CheckpointHost([scorer], observed_checkpoints(scorer, schedule), torch.float64)
    host.start("train", len(target))
    target = torch.as_tensor(target)
    host.update(Batch("train", torch.arange(len(target)), {"target": target, "label": target},
                      {LOGITS: torch.as_tensor(logits)}), schedule[0])
    host.end("train")
    return host.scores(scorer, "train")


@pytest.mark.parametrize("case", ["one example", "two of one class", "extreme logits"])
def test_label_scores_on_tiny_splits_and_saturated_softmax_equal_the_closed_forms(case):
    """cleanlab takes one example, one class among the targets, and probabilities of exactly 0 and 1 (its entropy
    refuses any above 1, which a float64 softmax never gives)."""
    logits, target = {
        "one example": (np.array([[0.3, -1.2, 2.0]], np.float32), [1]),
        "two of one class": (np.array([[0.3, -1.2, 2.0], [1.0, 1.0, -3.0]], np.float32), [2, 2]),
        "extreme logits": (np.array([[900.0, -900.0, 0.0], [-50.0, 40.0, 40.0], [1e-3, 0.0, 0.0]], np.float32),
                           [0, 2, 1]),
    }[case]
    probs = torch.softmax(torch.as_tensor(logits).double(), 1).numpy()
    assert probs.max() <= 1 and probs.min() >= 0
    expected = closed_forms(probs, np.array(target))
    for spec in LABEL_SCORES:
        np.testing.assert_allclose(feed(registry.create(spec), logits, target), expected[spec], rtol=1e-12,
                                   atol=1e-12, err_msg=spec)


def test_label_scores_refuse_a_single_class_model():
    with pytest.raises(ValueError, match="label quality needs 2 or more"):
        feed(registry.create("normalized-margin"), np.zeros((3, 1), np.float32), [0, 0, 0])


def test_the_cross_fit_variant_scores_the_held_out_logits_and_every_spec_names_its_probabilities():
    in_sample, cross_fit = (registry.create(f"self-confidence[probs={p}]") for p in ("in-sample", "cross-fit"))
    assert registry.create("self-confidence").spec == in_sample.spec == "self-confidence[probs=in-sample]"
    assert cross_fit.spec == "self-confidence[probs=cross-fit]"
    assert in_sample.needs == {LOGITS} and cross_fit.needs == {"heldout_logits"}
    held_out, final = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.0, 5.0], [5.0, 0.0]])
    batch = Batch("train", torch.arange(2), {"target": torch.tensor([0, 0]), "label": torch.tensor([0, 0])},
                  {LOGITS: final, "heldout_logits": held_out})
    torch.testing.assert_close(cross_fit.value(batch)["probs"], torch.softmax(held_out.double(), 1))
    torch.testing.assert_close(in_sample.value(batch)["probs"], torch.softmax(final.double(), 1))
    with pytest.raises(ValueError, match="probs='oos' is not one of in-sample, cross-fit"):
        type(in_sample)(probs="oos")


def torch_lrs(schedule, total):
    """The lr of each of ``total`` optimizer steps by torch's scheduler, stepped by hand after each step."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=LR)
    scheduler = {"step": lambda: lr_scheduler.MultiStepLR(optimizer, [math.ceil(total / 2), math.ceil(3 * total / 4)],
                                                          0.1),
                 "cosine": lambda: lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)}[schedule]()
    lrs = []
    for _ in range(total):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize("schedule", ["step", "cosine"])
@pytest.mark.parametrize("unit, every", [("epoch", 1), ("step", 5)])
def test_each_checkpoint_has_the_lr_of_the_step_before_it_from_training_and_from_a_stored_record(schedule, unit, every):
    """train's checkpoints and those a unit rebuilds from a stored record (epochs only, as older runs stored them)
    carry the lr torch's scheduler gives the step just before (the first step's at initialisation)."""
    torch.manual_seed(0)
    inputs, labels = torch.randn(50, 2), torch.randint(0, 2, (50,))
    recipe = Recipe(epochs=4, batch_size=16, lr=LR, schedule=schedule, checkpoint_unit=unit, checkpoint_every=every,
                    checkpoint_at_init=True)
    checkpoints = list(train(MLP((2,), 2, hidden=(4,)), inputs, labels, recipe, torch.Generator().manual_seed(0), (2,)))
    steps_per_epoch = 4  # 50 examples in batches of 16
    expected = torch_lrs(schedule, 4 * steps_per_epoch)
    steps = [round(c.epoch * steps_per_epoch) for c in checkpoints]
    assert steps == ([0, 4, 8, 12, 16] if unit == "epoch" else [0, 5, 10, 15, 16])
    stored = checkpoints_of({"checkpoint_epochs": [c.epoch for c in checkpoints]}, recipe, len(labels))
    for made in (checkpoints, stored):
        assert [c.lr for c in made] == pytest.approx([expected[max(s - 1, 0)] for s in steps], rel=1e-12)
    assert len({c.lr for c in checkpoints}) >= 3


def test_tracin_at_a_checkpoint_without_its_lr_is_skipped_alone_with_the_reason(two_blobs):
    inputs, labels = (torch.as_tensor(a[:40]) for a in two_blobs)
    model = MLP((2,), 2, hidden=(4,))
    probe = Probe({"train": ProbeSplit(inputs, labels, trusted_labels=True)},
                  [registry.create("tracin"), registry.create("self-confidence")], (2,))
    table = probe.run(model, [(Checkpoint(index=0, epoch=1, total=1), model.state_dict())])
    assert "learning rate, which these checkpoints do not carry" in probe.skipped["tracin"]
    assert not probe.failures and list(probe.skipped) == ["tracin"] and "tracin" not in table["train"]
    assert "self-confidence[probs=in-sample]" in table["train"]
