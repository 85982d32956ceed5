"""The unit cache: a changed scorer list recomputes only the new scorers, on the stored checkpoints."""

import numpy as np
import pytest

from bench import unit as units
from bench.cli import main
from bench.store import ScoreTable, load_checkpoints

pytestmark = pytest.mark.slow  # each test runs `bench run` end to end

RUN = ["run", "--dataset", "digits-c", "--model", "mlp", "--seeds", "1", "--epochs", "3", "--no-progress"]


def unit(out, scorers):
    [path] = [p for p in (out / "units").glob("*.npz") if sorted(ScoreTable.load(p).meta["scorers"]) == sorted(scorers)]
    return ScoreTable.load(path)


def test_a_changed_scorer_reuses_the_others_and_the_trained_model(tmp_path, monkeypatch):
    cached, fresh = tmp_path / "cached", tmp_path / "fresh"
    assert main([*RUN, "--scorers", "loss,vog,kde", "--out", str(cached)]) == 0
    [stored] = (cached / "checkpoints").glob("*.npz")
    states, training = load_checkpoints(stored)
    assert training["checkpoint_epochs"] == [1, 2, 3] and len(states) == 3

    def no_training(*_, **__):
        raise AssertionError("the model was trained again")

    with monkeypatch.context() as patch:
        patch.setattr(units, "train", no_training)
        assert main([*RUN, "--scorers", "loss,vog[norm=z],kde", "--out", str(cached)]) == 0
    assert main([*RUN, "--scorers", "loss,vog[norm=z],kde", "--out", str(fresh)]) == 0

    first, replayed, recomputed = unit(cached, ["loss", "vog", "kde"]), unit(cached, ["loss", "vog[norm=z]", "kde"]), \
        unit(fresh, ["loss", "vog[norm=z]", "kde"])
    assert replayed.meta["reused"] == ["kde", "loss"] and replayed.meta["seconds"]["train"] == 0
    for split, columns in recomputed.splits.items():
        for column, values in columns.items():  # replayed alone == computed beside the others, from scratch
            assert values.tobytes() == replayed.splits[split][column].tobytes(), (split, column)
        assert columns["loss"].tobytes() == first.splits[split]["loss"].tobytes()
    assert not np.array_equal(replayed.splits["test"]["vog[norm=z]"], first.splits["test"]["vog"])


def test_units_of_another_training_or_label_mode_are_not_reused(tmp_path):
    out = tmp_path / "out"
    assert main([*RUN, "--scorers", "loss", "--out", str(out)]) == 0
    assert main([*RUN, "--scorers", "loss,margin", "--label-mode", "true", "--out", str(out)]) == 0
    assert main([*RUN, "--scorers", "loss,margin", "--epochs", "2", "--out", str(out)]) == 0
    units = [ScoreTable.load(path) for path in (out / "units").glob("*.npz")]
    assert len(units) == 3 and not any(table.meta["reused"] for table in units)
    assert len(list((out / "checkpoints").glob("*.npz"))) == 2  # the label mode does not change the training


PLUGIN = """
import torch
from bench.api import LOGITS, CheckpointScore, register

@register
class ShiftedLoss(CheckpointScore):
    name, family, reference = "shifted-loss", "test", "-"
    needs, reduce = frozenset({LOGITS}), "mean"

    def __init__(self, shift: float = DEFAULT):
        self.shift = shift

    def value(self, batch):
        COMPUTE
        return torch.nn.functional.cross_entropy(batch[LOGITS], batch.target, reduction="none") + self.shift
"""


def test_a_changed_default_reuses_scores_by_their_full_parameters(tmp_path, isolated_registry):
    """Version 2 of a plugin changes a default: the scores of version 1 are found by their full parameters,
    so `shifted-loss` now names what version 1 called `shifted-loss[shift=1.0]`, and nothing is computed."""
    out, first, second = tmp_path / "out", tmp_path / "v1", tmp_path / "v2"
    for folder, default, compute in ((first, "0.0", "pass"), (second, "1.0", "raise AssertionError('computed again')")):
        folder.mkdir()
        (folder / "shifted.py").write_text(PLUGIN.replace("DEFAULT", default).replace("COMPUTE", compute))
    assert main([*RUN, "--plugin", str(first / "shifted.py"), "--scorers", "shifted-loss[shift=0.0|1.0]",
                 "--out", str(out)]) == 0
    before = unit(out, ["shifted-loss", "shifted-loss[shift=1.0]"])
    assert main([*RUN, "--plugin", str(second / "shifted.py"), "--scorers", "shifted-loss[shift=0.0|1.0]",
                 "--out", str(out)]) == 0
    after = unit(out, ["shifted-loss[shift=0.0]", "shifted-loss"])
    assert after.meta["reused"] == ["shifted-loss", "shifted-loss[shift=0.0]"] and not after.meta["failures"]
    for split, columns in after.splits.items():
        assert columns["shifted-loss"].tobytes() == before.splits[split]["shifted-loss[shift=1.0]"].tobytes()
        assert columns["shifted-loss[shift=0.0]"].tobytes() == before.splits[split]["shifted-loss"].tobytes()
