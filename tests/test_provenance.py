"""A run's thread count governs torch and the BLAS of numpy, scipy and scikit-learn alike, OMP_NUM_THREADS sets it
when no flag does, and the provenance names the BLAS and its threads: checked against threadpoolctl's own report."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import sklearn  # noqa: F401  (loads every BLAS the run uses, so their counts before a run are known)
import torch
from threadpoolctl import threadpool_info

from bench.errors import BenchError
from bench.provenance import device_name
from bench.runner import cpu_threads, run_threads, usable_cores

ROOT = Path(__file__).resolve().parents[1]
TINY = ["run", "--dataset", "digits-c", "--model", "mlp", "--scorers", "loss,kde", "--seeds", "1", "--epochs", "1",
        "--no-progress"]
DEVICE = re.compile(r"cpu \(.+, (\d+) threads?; (.+), (\d+) threads?\)")  # torch's threads; the BLAS, its threads
NOTE = "wins over OMP_NUM_THREADS"


def blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_every_blas_pool_runs_with_the_run_threads_and_gets_its_own_back():
    before, torch_before = blas_threads(), torch.get_num_threads()
    assert before  # numpy and scipy brought a BLAS that threadpoolctl sees: the checks below are not vacuous
    chosen = next(count for count in (1, 2, 3) if count not in before)
    outside = device_name(torch.device("cpu"))
    with pytest.raises(RuntimeError), cpu_threads(chosen):
        assert blas_threads() == [chosen] * len(before)
        assert torch.get_num_threads() == chosen
        inside = DEVICE.fullmatch(device_name(torch.device("cpu")))
        assert inside and inside[1] == inside[3] == str(chosen)
        raise RuntimeError("a run that fails gives the threads back too")
    assert blas_threads() == before
    assert torch.get_num_threads() == torch_before
    assert device_name(torch.device("cpu")) == outside


def test_omp_num_threads_sets_the_count_when_no_flag_does(monkeypatch, capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert run_threads(0) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "3,1")  # OpenMP's nested levels: the outermost one counts
    assert run_threads(0) == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert run_threads(0) == usable_cores()
    assert capsys.readouterr().err == ""


def test_the_flag_wins_over_omp_num_threads_and_says_so_once(monkeypatch, capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert run_threads(2) == 2
    assert capsys.readouterr().err.count(NOTE) == 1
    assert run_threads(3) == 3  # the same count: nothing to say
    assert capsys.readouterr().err == ""


def test_omp_num_threads_that_is_no_count_is_refused_unless_the_flag_decides(monkeypatch, capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    with pytest.raises(BenchError, match="OMP_NUM_THREADS='many' is not a number of threads; set it to one"):
        run_threads(0)
    assert run_threads(2) == 2
    assert NOTE in capsys.readouterr().err


@pytest.fixture(scope="module")
def omp_one_runs(tmp_path_factory):
    """Two tiny runs in fresh processes started with OMP_NUM_THREADS=1 (read as the libraries load): one without
    --threads, one with --threads 2; their device provenance and stderr."""
    root = tmp_path_factory.mktemp("omp")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    runs = {}
    for name, flags in (("variable", []), ("flag", ["--threads", "2"])):
        done = subprocess.run([sys.executable, "-m", "bench", *TINY, *flags, "--out", str(root / name)], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        [device] = pd.read_csv(root / name / "leaderboard.csv").device.unique()
        runs[name] = DEVICE.fullmatch(device), done.stderr
    return runs


@pytest.mark.slow
def test_omp_num_threads_alone_gives_a_run_of_one_thread_for_torch_and_blas(omp_one_runs):
    device, stderr = omp_one_runs["variable"]
    assert device and device[1] == device[3] == "1"
    libraries = {pool["internal_api"] for pool in threadpool_info() if pool["user_api"] == "blas"}
    assert all(library in device[2] for library in libraries)
    assert NOTE not in stderr


@pytest.mark.slow
def test_the_flag_wins_over_omp_num_threads_in_a_run_with_a_note_once(omp_one_runs):
    device, stderr = omp_one_runs["flag"]
    assert device and device[1] == device[3] == "2"
    assert stderr.count(NOTE) == 1


@pytest.mark.slow
def test_runs_with_other_blas_threads_record_other_provenance(omp_one_runs):
    one, two = omp_one_runs["variable"][0], omp_one_runs["flag"][0]
    assert one[2] == two[2] and one[3] != two[3]  # the same BLAS libraries, other thread counts
    assert one[0] != two[0]
