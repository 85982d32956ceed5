"""The unit cache: a changed scorer list recomputes only the new scorers, on the stored checkpoints."""

import numpy as np

from bench import runner
from bench.cli import main
from bench.leaderboard import read_csv
from bench.results import ScoreTable, load_checkpoints

VALUES = ["task", "scorer", "split", "seed", "metric", "value", "note"]
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
        patch.setattr(runner, "train", no_training)
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


def test_a_changed_default_reuses_scores_by_their_full_parameters(tmp_path, monkeypatch):
    from scorers.vog import VoG

    out = tmp_path / "out"
    assert main([*RUN, "--scorers", "vog[norm=none|z]", "--out", str(out)]) == 0
    before = unit(out, ["vog", "vog[norm=z]"])
    window, _, target, label = VoG.__init__.__defaults__
    monkeypatch.setattr(VoG.__init__, "__defaults__", (window, "z", target, label))  # the default is now norm=z
    assert runner.registry.create("vog").full_spec == f"vog[window={window},norm=z,target={target},label={label}]"

    def nothing_computed(*_, **__):
        raise AssertionError("a score was computed again")

    monkeypatch.setattr(runner, "train", nothing_computed)
    monkeypatch.setattr(VoG, "update", nothing_computed)
    assert main([*RUN, "--scorers", "vog[norm=none|z]", "--out", str(out)]) == 0
    after = unit(out, ["vog[norm=none]", "vog"])
    assert after.meta["reused"] == ["vog", "vog[norm=none]"]
    for split, columns in after.splits.items():
        assert columns["vog"].tobytes() == before.splits[split]["vog[norm=z]"].tobytes()
        assert columns["vog[norm=none]"].tobytes() == before.splits[split]["vog"].tobytes()
