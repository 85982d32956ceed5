"""Scoring checkpoints a user trained (``bench score``, ``checkpoints``): read in order, identified by content, scored
as the network itself computes, and what they lack skipped with its reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional

from bench.checkpoints import find_checkpoints
from bench.cli import main
from bench.config import RunConfig
from bench.data import load_dataset
from bench.errors import BenchError
from bench.leaderboard import read_csv
from bench.runner import run
from bench.training import model_input

FACTORY = f"{Path(__file__).resolve()}:small_network"
EPOCHS = 3


def small_network(input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), 16), nn.ReLU(), nn.Linear(16, n_classes))


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits-c", None, ())


def inputs_of(split, digits) -> torch.Tensor:
    return model_input(torch.as_tensor(split.inputs), digits.input_shape)


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory) -> tuple[Path, list[dict[str, torch.Tensor]]]:
    """A plain training loop's states at epochs 0..EPOCHS, saved as epoch=E.pt (the folder) and kept (the list)."""
    folder = tmp_path_factory.mktemp("run")
    x, y = inputs_of(digits.train, digits), torch.as_tensor(digits.train.labels)
    torch.manual_seed(0)
    network = small_network(digits.input_shape, digits.n_classes)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1)
    states = []
    for epoch in range(EPOCHS + 1):
        if epoch:
            for start in range(0, len(x), 32):
                optimizer.zero_grad()
                functional.cross_entropy(network(x[start:start + 32]), y[start:start + 32]).backward()
                optimizer.step()
        states.append({key: value.clone() for key, value in network.state_dict().items()})
        torch.save(states[-1], folder / f"epoch={epoch}.pt")
    return folder, states


def score(tmp_path: Path, *sources: str | Path, **settings) -> tuple:
    config = RunConfig(dataset="digits-c", model=FACTORY, checkpoints=[str(s) for s in sources],
                       seeds=list(range(len(sources))), out=str(tmp_path / "out"),
                       **{"scorers": ["loss", "max-softmax"], "corruptions": [], **settings})
    return run(config, progress=False)


def test_the_scores_are_the_networks_own_at_the_checkpoints_in_epoch_order(trained, digits, tmp_path):
    """The mean training loss over the checkpoints and the final predictions, computed from the saved states by
    hand, are the unit's; the files are read in epoch order whatever the order of their names."""
    folder, states = trained
    result = score(tmp_path, folder)
    (table,) = result.tables
    network = small_network(digits.input_shape, digits.n_classes)
    x, y = inputs_of(digits.train, digits), torch.as_tensor(digits.train.labels)
    losses = []
    with torch.no_grad():
        for state in states:
            network.load_state_dict(state)
            losses.append(functional.cross_entropy(network(x), y, reduction="none").double())
        expected_pred = network(inputs_of(digits.test, digits)).argmax(1).numpy()
    np.testing.assert_allclose(table.splits["train"]["loss"], torch.stack(losses).mean(0).numpy(), rtol=1e-5)
    np.testing.assert_array_equal(table.splits["test"]["pred"], expected_pred)
    assert table.meta["observed"]["loss"] == list(range(EPOCHS + 1))
    assert table.meta["checkpoints"]["files"] == [str(folder / f"epoch={e}.pt") for e in range(EPOCHS + 1)]


def test_a_unit_is_named_by_the_checkpoints_content_not_their_place(trained, tmp_path):
    folder, _ = trained
    first = score(tmp_path, folder)
    moved = shutil.copytree(folder, tmp_path / "elsewhere")
    again = score(tmp_path, moved)
    assert again.unit_paths == first.unit_paths
    (moved / "epoch=3.pt").write_bytes((folder / "epoch=2.pt").read_bytes())  # other weights, same names
    changed = score(tmp_path, moved)
    assert changed.unit_paths != first.unit_paths


def test_one_file_gives_the_post_hoc_scores_and_skips_the_scores_over_training_with_the_reason(trained, tmp_path):
    folder, _ = trained
    result = score(tmp_path, folder / "epoch=3.pt", scorers=["loss", "vog", "grand[epoch=0]", "max-softmax", "knn"])
    (table,) = result.tables
    assert set(table.scorers) == {"max-softmax", "knn"} and not table.meta["failures"]
    assert set(table.meta["skipped"]) == {"loss", "vog", "grand[epoch=0]"}
    notes = result.leaderboard.groupby("scorer").note.agg(lambda notes: " ".join(set(notes)))
    assert "skipped: a score over training needs two checkpoints or more" in notes["loss"]
    assert "skipped: it reads the model at initialisation" in notes["grand[epoch=0]"]
    difficulty = result.leaderboard[(result.leaderboard.task == "difficulty") & (result.leaderboard.seed == "0")]
    assert difficulty[difficulty.scorer == "knn"].value.notna().any()
    assert difficulty[difficulty.scorer == "loss"].value.isna().all()


def test_a_lone_file_without_an_epoch_is_the_final_model_and_epoch_choices_are_skipped(trained, tmp_path):
    folder, _ = trained
    final = shutil.copy(folder / "epoch=3.pt", tmp_path / "final.pt")
    (table,) = score(tmp_path, final, scorers=["el2n", "max-softmax"]).tables
    assert table.meta["skipped"] == {"el2n": "no checkpoint is at or after epoch 1 (the checkpoints carry no epoch)"}
    assert table.meta["observed"]["max-softmax"] == [None]


def test_learning_rates_from_a_manifest_weigh_tracin_and_without_them_it_is_skipped(trained, tmp_path):
    """TracIn is linear in each checkpoint's rate: doubling every rate doubles it (a closed form)."""
    folder, _ = trained

    def manifest(lr: float) -> Path:
        path = tmp_path / f"lr{lr}" / "checkpoints.json"
        path.parent.mkdir()
        for epoch in range(EPOCHS + 1):
            shutil.copy(folder / f"epoch={epoch}.pt", path.parent)
        path.write_text(json.dumps({"checkpoints": [{"file": f"epoch={e}.pt", "epoch": e, "lr": lr}
                                                    for e in range(EPOCHS + 1)]}))
        return path

    once, twice = (score(tmp_path, manifest(lr), scorers=["tracin"]).tables[0] for lr in (0.1, 0.2))
    np.testing.assert_allclose(twice.splits["train"]["tracin"], 2 * once.splits["train"]["tracin"], rtol=1e-6)
    (without,) = score(tmp_path, folder, scorers=["tracin"]).tables
    assert "learning rate" in without.meta["skipped"]["tracin"]


def test_lightning_checkpoints_count_epochs_from_zero_and_carry_their_state_dict_under_a_prefix(trained, tmp_path):
    """A Lightning ``.ckpt``: ``{"state_dict": {"model.<key>": ...}, "optimizer_states": [...]}``, named after the
    0-based epoch it ended; its optimizer's rate is read."""
    folder, states = trained
    lightning = tmp_path / "lightning"
    lightning.mkdir()
    for epoch, state in enumerate(states[1:]):
        torch.save({"epoch": epoch, "global_step": 40 * (epoch + 1), "state_dict": {f"model.{k}": v for k, v in state.items()},
                    "optimizer_states": [{"param_groups": [{"lr": 0.05}]}]}, lightning / f"epoch={epoch}-step={40 * (epoch + 1)}.ckpt")
    source = find_checkpoints(lightning)
    assert [file.epoch for file in source.files] == [1, 2, 3] and {file.lr for file in source.files} == {0.05}
    (from_lightning,) = score(tmp_path, lightning).tables
    plain = tmp_path / "plain"
    plain.mkdir()
    for epoch in (1, 2, 3):
        shutil.copy(folder / f"epoch={epoch}.pt", plain)
    (from_plain,) = score(tmp_path, plain).tables
    np.testing.assert_array_equal(from_lightning.splits["test"]["loss"], from_plain.splits["test"]["loss"])


def test_safetensors_files_are_read(trained, tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    folder, states = trained
    saved = tmp_path / "st"
    saved.mkdir()
    for epoch, state in enumerate(states):
        safetensors.save_file(state, saved / f"epoch={epoch}.safetensors")
    (from_safetensors,) = score(tmp_path, saved).tables
    (from_torch,) = score(tmp_path, folder).tables
    np.testing.assert_array_equal(from_safetensors.splits["train"]["loss"], from_torch.splits["train"]["loss"])


class NotATensor:
    pass


@pytest.mark.parametrize("case, message", [
    ("missing", "does not fit the model: missing 3.bias"),
    ("shape", "shapes differ at 1.weight (16, 32)"),
    ("pickle", "refuses to unpickle"),
    ("duplicate", "have the same epoch (1 and 1)"),
    ("unordered", "have epochs out of order (2 and 1)"),
    ("empty", "holds no checkpoint file"),
    ("unnamed", "its name carries no epoch"),
])
def test_bad_checkpoints_are_refused_with_the_file_and_the_fix_and_nothing_is_written(trained, tmp_path, case, message):
    folder, states = trained
    bad = tmp_path / "bad"
    bad.mkdir()
    state = dict(states[1])
    source: Path = bad
    if case == "missing":
        del state["3.bias"]
        torch.save(state, bad / "final.pt")
    elif case == "shape":
        state["1.weight"] = torch.zeros(16, 32)
        torch.save(state, bad / "final.pt")
    elif case == "pickle":
        torch.save({"state_dict": state, "extra": NotATensor()}, bad / "final.pt")
    elif case == "duplicate":
        torch.save(state, bad / "epoch=1.pt")
        torch.save(state, bad / "epoch_1.pt")
    elif case == "unordered":
        for epoch in (1, 2):
            torch.save(state, bad / f"epoch={epoch}.pt")
        source = bad / "checkpoints.json"
        source.write_text(json.dumps({"checkpoints": [{"file": "epoch=2.pt", "epoch": 2}, {"file": "epoch=1.pt", "epoch": 1}]}))
    elif case == "unnamed":
        torch.save(state, bad / "a.pt")
        torch.save(state, bad / "b.pt")
    with pytest.raises(BenchError, match=message.replace("(", r"\(").replace(")", r"\)")) as raised:
        score(tmp_path, source)
    assert str(bad) in str(raised.value)
    assert not list((tmp_path / "out").glob("units/*.npz"))


def test_bench_score_numbers_the_sources_and_refuses_a_run_without_checkpoints(trained, tmp_path, capsys):
    folder, _ = trained
    assert main(["score", "--model", FACTORY, "--dataset", "digits-c", "--corruptions", "",
                 "--checkpoints", f"{folder},{folder}", "--scorers", "loss", "--out", str(tmp_path / "out"),
                 "--no-progress"]) == 0
    board = read_csv(tmp_path / "out" / "leaderboard.csv")
    assert {"0", "1"} <= set(board.seed)
    assert main(["score", "--model", FACTORY, "--out", str(tmp_path / "none")]) == 2
    assert "bench score needs --checkpoints" in capsys.readouterr().err
