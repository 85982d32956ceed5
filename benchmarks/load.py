"""The quick preset alone, and beside a competing CPU-bound process: how far a shared machine slows a run.

The competitor is a PyTorch process left as PyTorch starts (its OpenMP threads spin while they
wait for work), convolving on every core. A run is expected to slow to about its share of the
cores, not collapse: spinning threads, ours or the competitor's, steal the cores the other
process's threads need, so every OpenMP barrier waits for a descheduled thread. ``bench`` lets its
own threads spin 1,000 times before they sleep (``GOMP_SPINCOUNT``, set by the CLI before torch
loads; GNU OpenMP's default is 300,000); the third measurement loads torch first, so that OpenMP
keeps its default, as before that change.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import report, sized

OPENMP = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")  # left to each process's own choice
BURNER = """
import torch
x, w = torch.randn(8, 256, 28, 28), torch.randn(64, 256, 3, 3)
while True:
    torch.nn.functional.conv2d(x, w, padding=1)
"""


def timed_run(out: Path, torch_first: bool = False) -> float:
    """Seconds of ``bench run`` in a new process; with ``torch_first``, torch is loaded before the CLI sets the wait policy."""
    arguments = ["run", *sized([], ["--epochs", "1", "--seeds", "1", "--scorers", "loss,vog"]), "--out", str(out),
                 "--no-progress"]
    script = f"{'import torch; ' if torch_first else ''}from bench.cli import main; raise SystemExit(main({arguments!r}))"
    environment = {key: value for key, value in os.environ.items() if key not in OPENMP}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", script], env=environment, check=True, capture_output=True)
    return time.perf_counter() - started


def run() -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        alone = timed_run(root / "alone")
        burner = subprocess.Popen([sys.executable, "-c", BURNER],
                                  env={key: value for key, value in os.environ.items() if key not in OPENMP})
        try:
            time.sleep(3)  # the competitor is up to speed
            beside = timed_run(root / "beside")
            spinning = timed_run(root / "spinning", torch_first=True)
        finally:
            burner.kill()
            burner.wait()
    report("under load", beside / alone, "at most 2.5", {
        "work": "bench run, the quick preset" + sized("", " (tiny: 1 epoch, 1 seed, 2 scorers)"),
        "alone": f"{alone:.1f} s",
        "beside a PyTorch process convolving on every core": f"{beside:.1f} s",
        "the same with OpenMP's default wait (torch loaded first, as before)": f"{spinning:.1f} s "
                                                                              f"(ratio {spinning / alone:.2f})",
        "cores this process may use": str(len(os.sched_getaffinity(0))),
    })
