"""A run killed with SIGKILL mid-way, then started again, equals an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from bench.leaderboard import read_csv
from conftest import without_costs

pytestmark = pytest.mark.slow

ARGS = ["run", "--dataset", "digits-c", "--model", "mlp", "--scorers", "loss,vog", "--seeds", "2", "--epochs", "3",
        "--no-progress"]


def bench(out, **popen):
    return subprocess.Popen([sys.executable, "-m", "bench", *ARGS, "--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, **popen)


def test_a_run_killed_mid_way_resumes_to_the_same_leaderboard(tmp_path):
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    assert bench(whole).wait(timeout=600) == 0
    process = bench(killed)
    deadline = time.monotonic() + 600
    while len(list((killed / "units").glob("*.npz"))) < 1:  # seed 0 finished; seed 1 under way
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    [finished] = (killed / "units").glob("*.npz")
    assert "seed0" in finished.name and not (killed / "leaderboard.csv").exists()
    finished_at = finished.stat().st_mtime_ns

    resumed = bench(killed)
    _, log = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, log
    assert finished.stat().st_mtime_ns == finished_at  # reused, not recomputed
    columns = ["task", "dataset", "scorer", "split", "seed", "metric", "value", "note"]
    pd.testing.assert_frame_equal(without_costs(read_csv(killed / "leaderboard.csv"))[columns],
                                  without_costs(read_csv(whole / "leaderboard.csv"))[columns])
