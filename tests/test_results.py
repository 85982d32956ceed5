"""Score tables on disk: a documented .npz that plain numpy reads without pickle."""

import json

import numpy as np

from bench.store import ScoreTable


def test_round_trip_and_plain_numpy_layout(tmp_path):
    table = ScoreTable(
        meta={"seed": 0, "scorers": ["vog[norm=z]"], "failures": {}},
        splits={"test": {"id": np.arange(3), "label": np.array([1, 0, 2]), "vog[norm=z]": np.array([0.5, np.nan, -1.0])}},
    )
    path = tmp_path / "units" / "unit.npz"
    table.save(path)
    assert [p.name for p in path.parent.iterdir()] == ["unit.npz"]  # no temporary file left behind
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["meta", "test/id", "test/label", "test/vog[norm=z]"]
        assert json.loads(str(archive["meta"]))["seed"] == 0
    loaded = ScoreTable.load(path)
    assert loaded.meta == table.meta
    np.testing.assert_array_equal(loaded.splits["test"]["vog[norm=z]"], table.splits["test"]["vog[norm=z]"])
    assert loaded.scorers == ["vog[norm=z]"]
    assert list(loaded.frame("test").columns) == ["id", "label", "vog[norm=z]"]


def test_saving_is_deterministic(tmp_path):
    table = ScoreTable(meta={"a": 1}, splits={"train": {"x": np.linspace(0, 1, 5)}})
    table.save(tmp_path / "one.npz")
    table.save(tmp_path / "two.npz")
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()


def test_file_names_are_tidy_whatever_the_dataset_name():
    from bench.store import Store

    assert Store.stem("fashion-mnist[label_noise=0.2]", "lenet", 0, "0a1b2c") == "fashion-mnist-label-noise-0.2_lenet_seed0_0a1b2c"
    assert Store.stem("my data", "mlp", 3, "") == "my-data_mlp_seed3_"
