"""The Ray executor gives the local executor's leaderboard, value for value: on a local Ray instance, with a unit's
probe in shards, and on a two-node cluster."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main
from bench.leaderboard import read_csv
from bench.store import ScoreTable
from conftest import without_costs

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray", reason="the Ray executor needs the ray extra: pip install -e '.[ray]'")

ARGS = ["run", "--dataset", "digits-c", "--model", "mlp", "--scorers", "loss,vog,kde,gaussian", "--seeds", "2",
        "--epochs", "2", "--no-progress"]


def test_ray_and_local_executors_give_the_same_leaderboard_and_score_files(tmp_path):
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    assert main([*ARGS, "--out", str(local)]) == 0
    assert main([*ARGS, "--out", str(on_ray), "--executor", "ray"]) == 0
    assert not ray.is_initialized()  # the local instance it started is shut down
    columns = ["task", "dataset", "scorer", "split", "seed", "metric", "value", "note"]
    a, b = (without_costs(read_csv(folder / "leaderboard.csv"))[columns] for folder in (local, on_ray))
    assert len(a) > 100 and a.equals(b)
    for path in (local / "units").glob("*.npz"):
        first, second = ScoreTable.load(path), ScoreTable.load(on_ray / "units" / path.name)
        for split, values in first.splits.items():
            for column, array in values.items():
                np.testing.assert_array_equal(array, second.splits[split][column], err_msg=f"{path.name} {split} {column}")


def test_ray_address_without_the_ray_executor_is_refused(tmp_path, capsys):
    assert main([*ARGS, "--out", str(tmp_path), "--ray-address", "auto"]) == 2
    assert "--ray-address is for the Ray executor; add --executor ray" in capsys.readouterr().err


def test_the_shards_of_each_unit_as_ray_tasks_give_the_local_unsharded_score_files(tmp_path):
    """``--executor ray --shards 3``: each unit a Ray task, its probe's shards Ray tasks of their own (the unit says
    so), joined into the score files of a local run without shards, value for value; no shard is left behind."""
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    assert main([*ARGS, "--out", str(local)]) == 0
    assert main([*ARGS, "--out", str(on_ray), "--executor", "ray", "--shards", "3"]) == 0
    for path in (local / "units").glob("*.npz"):
        first, second = ScoreTable.load(path), ScoreTable.load(on_ray / "units" / path.name)
        assert "shards" not in first.meta and second.meta["shards"] == {"count": 3, "on": "Ray tasks"}
        for split, values in first.splits.items():
            for column, array in values.items():
                np.testing.assert_array_equal(array, second.splits[split][column], err_msg=f"{path.name} {split} {column}")
    assert not list((on_ray / "shards").iterdir())


def test_ranges_of_checkpoints_as_ray_tasks_give_the_local_run_in_the_same_ranges(tmp_path):
    """``--shards 2 --checkpoint-shards 2`` (4 shards a unit): on Ray the score files of a local run with the same
    cuts, value for value, the states merged in the same order."""
    cut = ["--shards", "2", "--checkpoint-shards", "2"]
    assert main([*ARGS, *cut, "--out", str(tmp_path / "local")]) == 0
    assert main([*ARGS, *cut, "--out", str(tmp_path / "ray"), "--executor", "ray"]) == 0
    for path in (tmp_path / "local" / "units").glob("*.npz"):
        first, second = ScoreTable.load(path), ScoreTable.load(tmp_path / "ray" / "units" / path.name)
        assert second.meta["shards"] == {"count": 2, "on": "Ray tasks", "checkpoint_ranges": 2}
        for split, values in first.splits.items():
            for column, array in values.items():
                np.testing.assert_array_equal(array, second.splits[split][column], err_msg=f"{path.name} {split} {column}")


@pytest.fixture
def two_node_cluster(monkeypatch, tmp_path):
    """A Ray cluster of two nodes on this machine, a head and a worker of one CPU each, joined through the loopback
    address with token authentication (as Ray 2.60 asks of a cluster started with `ray start`); stopped after."""
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    port = 6300 + os.getpid() % 500
    address = f"127.0.0.1:{port}"
    ray_command = str(Path(sys.executable).with_name("ray"))  # the ray extra's command, beside this interpreter
    start = [ray_command, "start", "--num-cpus", "1"]
    try:
        subprocess.run([*start, "--head", "--port", str(port), "--include-dashboard", "false"], check=True,
                       capture_output=True, timeout=120)
        subprocess.run([*start, "--address", address], check=True, capture_output=True, timeout=120)
        yield address
    finally:
        subprocess.run([ray_command, "stop", "--force"], capture_output=True, timeout=120)


def test_a_unit_sharded_across_a_two_node_cluster_gives_the_local_score_files(two_node_cluster, tmp_path):
    """One CPU thread (each node has one CPU): the unit's probe in 2 shards, Ray tasks spread over the two nodes,
    gives the score files of a local unsharded run with one thread, value for value."""
    args = [*ARGS, "--seeds", "1", "--threads", "1"]
    local, on_cluster = tmp_path / "local", tmp_path / "cluster"
    assert main([*args, "--out", str(local)]) == 0
    # as a user runs it, in a process of its own: Ray reads RAY_AUTH_MODE when it is first imported
    joined = subprocess.run([sys.executable, "-m", "bench", *args, "--out", str(on_cluster), "--executor", "ray",
                             "--ray-address", two_node_cluster, "--shards", "2"], capture_output=True, text=True,
                            timeout=600)
    assert joined.returncode == 0, joined.stderr[-3000:]
    [path] = (local / "units").glob("*.npz")
    first, second = ScoreTable.load(path), ScoreTable.load(on_cluster / "units" / path.name)
    assert second.meta["shards"] == {"count": 2, "on": "Ray tasks"}
    for split, values in first.splits.items():
        for column, array in values.items():
            np.testing.assert_array_equal(array, second.splits[split][column], err_msg=f"{split} {column}")
