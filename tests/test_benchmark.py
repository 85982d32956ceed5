"""The Python API computes the same units as `bench run` (the README's example runs in test_docs.py)."""

import numpy as np
import pytest
from torch import nn

from bench.benchmark import Benchmark
from bench.cli import main
from bench.errors import BenchError
from bench.models import model_name
from bench.store import ScoreTable

def test_the_api_and_the_cli_compute_the_same_unit_bit_for_bit(tmp_path):
    settings = dict(scorers=["loss", "vog"], seeds=[0], epochs=2)
    api = Benchmark("digits-c", model="mlp", out=str(tmp_path / "api"), **settings).run(progress=False)
    assert main(["run", "--dataset", "digits-c", "--model", "mlp", "--scorers", "loss,vog", "--seeds", "1",
                 "--epochs", "2", "--out", str(tmp_path / "cli"), "--no-progress"]) == 0
    [cli_unit] = (tmp_path / "cli" / "units").glob("*.npz")
    assert cli_unit.name == api.unit_paths[0].name
    cli = ScoreTable.load(cli_unit)
    for split, columns in api.tables[0].splits.items():
        for column, values in columns.items():
            assert values.tobytes() == cli.splits[split][column].tobytes()
    frame = api.scores("test")
    assert list(frame.columns[:5]) == ["seed", "id", "label", "pred", "noisy"]
    assert np.array_equal(frame["vog"], cli.splits["test"]["vog"])


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.head = nn.Sequential(nn.Flatten(), nn.Linear(2, 8), nn.ReLU()), nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.body(x))


def test_arrays_a_model_class_and_an_ood_dataset_object_run_and_land_in_the_frames(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(120, 1, 1, 2)).astype(np.float32), rng.integers(0, 2, 120)
    x[:, 0, 0, 0] += 3 * y
    from bench.data.arrays import from_arrays

    far = from_arrays("far", x[:30] + 10, y[:30], x[:30] + 10, y[:30])
    result = Benchmark((x[:80], y[:80], x[80:], y[80:]), model=Net, scorers=["loss"], ood=[far], seeds=[0, 1],
                       epochs=3, batch_size=16, out=str(tmp_path)).run(progress=False)
    assert set(result.scores("far").seed) == {0, 1} and len(result.scores("far")) == 60
    assert result.tables[0].meta["ood_kinds"] == {"far": "semantic"}
    assert (result.leaderboard.dataset == "arrays").all()


def test_an_edited_class_is_another_model_and_an_object_model_is_refused_for_ray(tmp_path):
    class Net(nn.Module):  # noqa: F811  (the same qualified name as the one above, other code)
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(2, 3)

        def forward(self, x):
            return self.head(x.flatten(1))

    assert model_name(Net) != model_name(globals()["Net"])
    with pytest.raises(BenchError, match="cannot reach Ray workers; give it as module:callable"):
        Benchmark("digits-c", model=Net, scorers=["loss"], out=str(tmp_path)).run(executor="ray")
    with pytest.raises(BenchError, match="unknown config key 'epoch'"):
        Benchmark("digits-c", epoch=3)
