"""The noise-aware gate on real runs: other thread counts (other floating-point sums, as another
processor gives) pass it; a scorer made worse by a known amount fails it, and only that scorer."""

import numpy as np
import pytest
import torch

from bench.cli import main
from bench.leaderboard import read_csv

pytestmark = pytest.mark.slow

PLANTED = '''
import os
import zlib

import numpy as np

from bench.api import register
from scorers.dynamics import MaxSoftmax


@register
class Planted(MaxSoftmax):
    """max-softmax, plus Gaussian noise of std $PLANTED_NOISE: a regression of known size."""

    name = "planted"

    def finish(self, reduced, split):
        noise = float(os.environ.get("PLANTED_NOISE", "0"))
        rng = np.random.default_rng(zlib.crc32(split.encode()))
        return reduced[split] + noise * rng.standard_normal(len(reduced[split]))
'''


def run(tmp_path, name, threads, isolated_registry):
    plugin = tmp_path / "planted.py"
    plugin.write_text(PLANTED)
    before = torch.get_num_threads()
    assert main(["run", "--dataset", "digits-c", "--model", "lenet", "--scorers", "loss,max-softmax,vog,planted",
                 "--seeds", "4", "--epochs", "3", "--threads", str(threads), "--plugin", str(plugin),
                 "--out", str(tmp_path / name), "--no-progress"]) == 0
    assert torch.get_num_threads() == before  # the run's threads are its own
    return tmp_path / name / "leaderboard.csv"


def test_other_thread_counts_pass_the_gate_and_a_planted_regression_fails_it(tmp_path, monkeypatch, capsys,
                                                                             isolated_registry):
    one = run(tmp_path, "one-thread", 1, isolated_registry)
    two = run(tmp_path, "two-threads", 2, isolated_registry)
    a, b = read_csv(one), read_csv(two)
    assert "1 thread)" in a.device.iloc[0]
    assert "2 threads" in b.device.iloc[0]
    moved = (a.value - b.value).abs()
    assert moved.max() > 0  # the thread count did change the sums: the proof is not vacuous
    assert main(["compare", str(one), str(two), "--fail-if-worse", "auroc", "--fail-if-worse", "error_auroc"]) == 0
    monkeypatch.setenv("PLANTED_NOISE", "0.3")
    worse = run(tmp_path, "planted", 2, isolated_registry)
    capsys.readouterr()
    assert main(["compare", str(one), str(worse), "--fail-if-worse", "auroc"]) == 1
    out = capsys.readouterr().out.split("rows got worse")[1]
    assert "planted" in out and "vog" not in out and "loss" not in out
    drops = read_csv(worse)
    planted = drops[(drops.scorer == "planted") & (drops.metric == "auroc") & (drops.seed == "all")]
    clean = a[(a.scorer == "planted") & (a.metric == "auroc") & (a.seed == "all")]
    assert (planted.value.to_numpy() < clean.value.to_numpy()).mean() > 0.9  # the noise lowers nearly every AUROC
