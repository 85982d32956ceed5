"""K-fold cross-fitting (config key cross_fit): the folds, the fold models, and the signal heldout_logits they give.

The runs are tiny: two-blobs (500 2-D points), an MLP, 2 epochs, 3 folds.
"""

import numpy as np
import pytest
import torch

from bench import api, registry
from bench import unit as units
from bench.api import Checkpoint, CheckpointScore, register
from bench.benchmark import Benchmark
from bench.data import load_dataset
from bench.data.arrays import from_arrays
from bench.models import build_model
from bench.probe import NO_FOLDS, Folds, Probe, ProbeSplit
from bench.signals import HELDOUT_LOGITS
from bench.store import load_checkpoints
from bench.training import model_input

K, SEED = 3, 4
SETTINGS = {"model": "mlp", "seeds": [SEED], "epochs": 2, "bootstrap_resamples": 0, "threads": 1}
HELDOUT = ["heldout-column", "heldout-column[column=1]"]  # the two columns of two-blobs' heldout_logits


class HeldoutColumn(CheckpointScore):
    """One column of heldout_logits, at the last checkpoint: the logits themselves, read back from the score table."""

    name, family, reference = "heldout-column", "test", "-"
    needs, reduce = frozenset({HELDOUT_LOGITS}), "last"

    def __init__(self, column: int = 0, every_checkpoint: bool = False):
        self.column, self.every_checkpoint = column, every_checkpoint

    def observes(self, checkpoint: Checkpoint) -> bool:
        return self.every_checkpoint or checkpoint.is_last

    def value(self, batch):
        return batch[HELDOUT_LOGITS][:, self.column]


@pytest.fixture(scope="module", autouse=True)
def heldout_scorer():
    """HeldoutColumn registered for this module's tests, forgotten after them."""
    registry.available()
    saved = dict(api.registered)
    register(HeldoutColumn)
    yield
    api.registered.clear()
    api.registered.update(saved)


class TrainingSpy:
    """Records the training split each call of ``bench.unit.train`` got, then trains as asked."""

    def __init__(self, monkeypatch):
        self.calls, self.train = [], units.train
        monkeypatch.setattr(units, "train", self)

    def __call__(self, model, inputs, labels, *args, **kwargs):
        self.calls.append((inputs.cpu().clone(), labels.cpu().clone()))
        return self.train(model, inputs, labels, *args, **kwargs)


def run(out, scorers, **settings):
    [table] = Benchmark("two-blobs", scorers=scorers, out=str(out), **SETTINGS, **settings).run(progress=False).tables
    return table


def checkpoints(out):
    return sorted(path.name for path in (out / "checkpoints").glob("*.npz"))


@pytest.fixture(scope="module")
def crossfit(tmp_path_factory):
    """A cross-fitted run (its results folder, score table and the splits each training got), after a plain run in
    the same folder (whose table it also returns): the plain run's model is reused, and only the folds are trained."""
    out = tmp_path_factory.mktemp("crossfit")
    plain = run(out, ["loss", "margin"])
    with pytest.MonkeyPatch.context() as patch:
        spy = TrainingSpy(patch)
        table = run(out, ["loss", "margin", *HELDOUT], cross_fit=K)
    return out, table, spy.calls, plain


def test_folds_partition_the_examples_stratified_by_class_and_drawn_from_the_seed():
    labels = np.random.default_rng(0).permutation(np.repeat([0, 1, 2], [50, 31, 7]))
    fold = units.fold_assignment(labels, 4, seed=SEED)
    assert fold.shape == labels.shape and set(fold) == {0, 1, 2, 3}  # each example in exactly one of the 4 folds
    sizes = np.bincount(fold)
    assert sizes.max() - sizes.min() <= 1
    for cls, count in zip(range(3), (50, 31, 7)):
        per_fold = np.bincount(fold[labels == cls], minlength=4)
        assert set(per_fold) <= {count // 4, -(-count // 4)}, (cls, per_fold)  # each class split evenly, to within one
    assert np.array_equal(fold, units.fold_assignment(labels, 4, seed=SEED))
    others = [units.fold_assignment(labels, 4, seed) for seed in (SEED + 1, SEED + 2)]
    assert not np.array_equal(fold, others[0]) and not np.array_equal(others[0], others[1])


def test_each_fold_model_trains_on_the_training_split_without_its_fold_alone(crossfit):
    out, table, calls, _ = crossfit
    train = load_dataset("two-blobs").train
    fold = units.fold_assignment(train.labels, K, SEED)
    assert len(calls) == K  # the unit's own model was the plain run's: only the folds were trained
    for k, (inputs, labels) in enumerate(calls):
        torch.testing.assert_close(inputs, torch.as_tensor(train.inputs[fold != k]), rtol=0, atol=0)
        torch.testing.assert_close(labels, torch.as_tensor(train.labels[fold != k]), rtol=0, atol=0)
    record = table.meta["cross_fit"]
    assert record["k"] == K and record["done"] and record["fold"] == fold.tolist()
    assert "seconds" in record and "cross_fit" in table.meta["seconds"]  # the folds' cost, as the unit's parts
    [folds] = (out / "checkpoints").glob("*_folds3.npz")
    states, meta = load_checkpoints(folds)
    assert len(states) == K and meta["fold"] == fold.tolist() and meta["seed"] == SEED


def test_heldout_logits_are_the_logits_of_the_fold_model_that_never_saw_the_example(crossfit):
    out, table, _, _ = crossfit
    dataset = load_dataset("two-blobs")
    [folds] = (out / "checkpoints").glob("*_folds3.npz")
    [main] = (out / "checkpoints").glob("*_????????????.npz")
    fold_states, meta = load_checkpoints(folds)
    fold = np.asarray(meta["fold"])

    def logits(state, inputs):
        model = build_model("mlp", dataset.input_shape, dataset.n_classes)
        model.load_state_dict({name: torch.from_numpy(array) for name, array in state.items()})
        with torch.no_grad():
            return model.eval()(model_input(torch.as_tensor(inputs), dataset.input_shape)).double().numpy()

    got = {split: np.stack([table.splits[split][spec] for spec in HELDOUT], axis=1) for split in ("train", "test")}
    expected = np.empty_like(got["train"])
    for k, state in enumerate(fold_states):
        expected[fold == k] = logits(state, dataset.train.inputs[fold == k])
    np.testing.assert_allclose(got["train"], expected, rtol=1e-6, atol=1e-6)
    final = load_checkpoints(main)[0][-1]
    np.testing.assert_allclose(got["test"], logits(final, dataset.test.inputs), rtol=1e-6, atol=1e-6)
    assert not np.allclose(got["train"], logits(final, dataset.train.inputs), atol=1e-3)  # not the final model's


def test_a_fold_model_never_saw_its_fold_which_a_memorising_model_shows(tmp_path):
    """Random pixels with random labels: a model is right about them only where it memorised them. The final model
    is right on nearly every training example; the models that left each one out are right by chance alone."""
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (120, 8, 8), dtype=np.uint8), rng.integers(0, 2, 120)
    data = from_arrays("noise", images[:90], labels[:90], images[90:], labels[90:])
    [table] = Benchmark(data, scorers=HELDOUT, out=str(tmp_path), cross_fit=K, **{**SETTINGS, "epochs": 30},
                        batch_size=16).run(progress=False).tables
    train = table.splits["train"]
    heldout_pred = (train[HELDOUT[1]] > train[HELDOUT[0]]).astype(int)
    assert np.mean(train["pred"] == train["label"]) > 0.95
    assert np.mean(heldout_pred == train["label"]) < 0.7  # chance is 0.5 (a std of 0.05 over 90 examples)


def test_cross_fitting_changes_no_other_score_and_off_it_changes_no_hash(crossfit, tmp_path, monkeypatch):
    out, table, _, plain = crossfit
    assert "cross_fit" not in plain.meta and "cross_fit" not in plain.meta["config"]  # off: named nowhere
    for split, columns in plain.splits.items():  # the same model, the same scores, bit for bit
        for column, values in columns.items():
            assert values.tobytes() == table.splits[split][column].tobytes(), (split, column)
    assert table.meta["config"]["cross_fit"] == K and table.meta["config_hash"] != plain.meta["config_hash"]
    [model, folds] = checkpoints(out)  # one model for both runs, and the folds beside it
    assert folds == model.replace(".npz", f"_folds{K}.npz")

    def no_computing(*_, **__):
        raise AssertionError("computed again")

    monkeypatch.setattr(units, "run_unit", no_computing)
    again = run(out, ["loss", "margin"], cross_fit=0)  # cross_fit = 0 said aloud is the unit cached without it
    assert again.meta["config_hash"] == plain.meta["config_hash"]
    assert again.meta["provenance"] == plain.meta["provenance"]  # the very unit, not one computed again


def test_stored_fold_models_are_reused_and_new_scorers_alone_computed(crossfit, monkeypatch):
    out, table, _, _ = crossfit
    spy = TrainingSpy(monkeypatch)
    wider = run(out, ["loss", *HELDOUT, "heldout-column[column=-1]"], cross_fit=K)  # the last column: a new spec
    assert spy.calls == [] and wider.meta["seconds"]["cross_fit"] == 0 and wider.meta["cross_fit"]["done"]
    assert sorted(wider.meta["reused"]) == sorted(["loss", *HELDOUT])
    assert wider.splits["train"]["heldout-column[column=-1]"].tobytes() == table.splits["train"][HELDOUT[1]].tobytes()


def test_a_scorer_needing_heldout_logits_without_folds_fails_alone_saying_how_to_get_them(tmp_path, capsys):
    table = run(tmp_path, ["loss", "heldout-column"])
    assert list(table.meta["failures"]) == ["heldout-column"] and NO_FOLDS in table.meta["failures"]["heldout-column"]
    assert "needs cross-fitted models: run with --cross-fit 5" in capsys.readouterr().err
    assert np.isfinite(table.splits["train"]["loss"]).all()
    assert not list((tmp_path / "checkpoints").glob("*_folds*"))


def test_heldout_logits_before_the_last_checkpoint_fail_their_scorer_alone():
    """They are the final models' logits; at an earlier checkpoint they would be another model's."""
    rng = np.random.default_rng(0)
    labels = torch.as_tensor(rng.integers(0, 2, 40))
    split = ProbeSplit(torch.as_tensor(rng.normal(size=(40, 2)), dtype=torch.float32), labels, trusted_labels=True)
    model = build_model("mlp", (2,), 2)
    state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    folds = Folds(np.arange(40) % 2, [state, state])
    probe = Probe({"train": split}, [HeldoutColumn(every_checkpoint=True), HeldoutColumn(column=1)], (2,))
    table = probe.run(model, [(Checkpoint(index, index + 1, 2), state) for index in range(2)], folds=folds)
    assert list(probe.failures) == ["heldout-column[every_checkpoint=true]"]
    assert "last checkpoint only" in probe.failures["heldout-column[every_checkpoint=true]"]
    with torch.no_grad():
        np.testing.assert_allclose(table["train"]["heldout-column[column=1]"], model(split.inputs)[:, 1].double(),
                                   rtol=1e-6)
