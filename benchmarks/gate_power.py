"""The gate's power and false-failure rate, with the noise of a real rerun.

Two leaderboards of one config (``BENCH_GATE_A`` and ``BENCH_GATE_B``; by default the quick preset
is run here with 2 and with 1 torch threads: the same seeds, other floating-point sums, which
training amplifies as another machine would) give each gated row's noise per seed: the spread of
its per-seed differences. With that noise:

* the drop ``bench compare --fail-if-worse auroc --fail-if-worse error_auroc`` detects with 80%
  power in each family, at 3, 5 and 10 seeds per file (median and largest over the rows);
* by simulation (``COMPARISONS`` comparisons of per-seed values drawn with each row's measured
  spread and no change), how often the gate fails a clean comparison: at most alpha (0.05) by
  construction, shown with its 95% binomial interval;
* by simulation, how often a drop of 0.05 in one headline row is found, averaged over the rows.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from scipy import stats

from bench.cli import main
from bench.compare import HEADLINE, compare, family_adjusted
from bench.leaderboard import read_csv
from bench.stats import PAIRED
from benchmarks.common import sized

GATED = {"auroc": 0.0, "error_auroc": 0.0}
ALPHA, DROP = 0.05, 0.05
SEED_COUNTS = (3, 5, 10)
COMPARISONS = sized(2000, 50)


def reruns(folder: Path) -> tuple[Path, Path]:
    """The two leaderboards: from the environment, or the quick preset run here with 2 and 1 threads."""
    given = os.environ.get("BENCH_GATE_A"), os.environ.get("BENCH_GATE_B")
    if all(given):
        return Path(given[0]), Path(given[1])
    paths = []
    for threads in (2, 1):
        out = folder / f"threads{threads}"
        arguments = ["run", *sized([], ["--model", "mlp", "--epochs", "1", "--seeds", "2",
                                                  "--scorers", "loss,max-softmax"]),
                     "--threads", str(threads), "--out", str(out), "--no-progress"]
        if main(arguments) != 0:
            raise SystemExit(f"bench {' '.join(arguments)} failed")
        paths.append(out / "leaderboard.csv")
    return paths[0], paths[1]


def simulated_failures(spreads: np.ndarray, families: np.ndarray, seeds: int, drops: np.ndarray,
                       rng: np.random.Generator) -> np.ndarray:
    """Which rows each simulated comparison fails (comparisons x rows): per-seed differences normal with the rows'
    ``spreads`` and mean ``-drops``, tested one-sided and paired and adjusted as ``bench compare`` does."""
    failed = np.empty((COMPARISONS, len(spreads)), dtype=bool)
    for k in range(COMPARISONS):
        differences = rng.normal(size=(len(spreads), seeds)) * spreads[:, None] - drops[:, None]
        p_worse = stats.ttest_1samp(differences, 0.0, axis=1, alternative="less").pvalue
        failed[k] = family_adjusted(p_worse, families) <= ALPHA
    return failed


def run() -> None:
    with tempfile.TemporaryDirectory() as folder:
        a, b = reruns(Path(folder))
        result = compare(read_csv(a), read_csv(b), GATED, ALPHA)
    checked = result.checked
    print(f"gate power: {a} against {b}, --fail-if-worse {' --fail-if-worse '.join(GATED)}, alpha {ALPHA}")
    for family, rows in checked.groupby("family", sort=False):
        figures = []
        for seeds in SEED_COUNTS:
            drops = np.array([result.detectable(row, seeds) for _, row in rows.iterrows()], dtype=float)
            drops = drops[np.isfinite(drops)]
            figures.append(f"{seeds} seeds {np.median(drops):.3f} (max {drops.max():.3f})")
        print(f"  {family} ({len(rows)} rows): drop detected with 80% power, median over the rows: {'; '.join(figures)}")
    paired = checked[[d is not None and d.test == PAIRED for d in checked.difference]]
    spreads = np.array([d.spreads[0] for d in paired.difference])
    families = paired.family.to_numpy()
    rng = np.random.default_rng(0)
    for seeds in SEED_COUNTS:
        clean = simulated_failures(spreads, families, seeds, np.zeros(len(spreads)), rng).any(axis=1)
        interval = stats.binomtest(int(clean.sum()), len(clean)).proportion_ci()
        headline = np.flatnonzero(families == HEADLINE)
        found = []
        for row in headline:
            drops = np.zeros(len(spreads))
            drops[row] = DROP
            found.append(simulated_failures(spreads, families, seeds, drops, rng)[:, row].mean())
        print(f"  {seeds} seeds, {COMPARISONS} simulated comparisons of the {len(spreads)} paired rows: clean ones "
              f"failed {clean.mean():.3f} [{interval.low:.3f}, {interval.high:.3f}]; a drop of {DROP} in one of the "
              f"{len(headline)} headline rows found {np.mean(found):.2f} of the time (median row {np.median(found):.2f})")
