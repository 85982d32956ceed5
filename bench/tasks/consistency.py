"""The consistency task: how far to trust one run's ranking (after Kwok et al. 2024).

Per scorer and split (train and the clean test split), over the seeds of the run:

* ``spearman_seeds``: the mean Spearman correlation between the scores of two seeds;
* ``split_half``: Spearman between the seed-averaged scores of two disjoint halves of the
  seeds (the first h = floor(R/2) seeds against the next h);
* ``runs_for_0.9``: how many seeds must be averaged for that average to correlate 0.9 with
  another such average, by Spearman-Brown from the split-half value (one seed's reliability
  is ``rho_h / (h - (h - 1) rho_h)``); inf when the halves do not agree at all;
* ``spearman_with`` (``vs_scorer``: the other): the cross-scorer matrix, Spearman between two
  scorers on the same seed, averaged over seeds.

Every row is over seeds, so its seed is ``all``; none has a spread or interval. Ties get average
ranks; a constant score gives NaN with the reason.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.metrics import runs_for, spearman_brown, spearman_matrix, unusable
from bench.store import ScoreTable
from bench.tasks.rows import ROW_COLUMNS, metric_rows, unit_keys, unscored_note

TASK = "consistency"
SPLITS = ("train", "test")
TARGET = 0.9
METRICS = ("spearman_seeds", "split_half", f"runs_for_{TARGET}")


def seed_metrics(runs: np.ndarray) -> tuple[dict[str, float], str]:
    """The across-seed metrics of one score, given as a (seeds, examples) array."""
    n_seeds = len(runs)
    if n_seeds < 2:
        return dict.fromkeys(METRICS, np.nan), "needs at least 2 seeds"
    reasons = {i: reason for i, run in enumerate(runs) if (reason := unusable(run))}
    if reasons:
        shared = set(reasons.values())
        if len(reasons) == n_seeds and len(shared) == 1:
            return dict.fromkeys(METRICS, np.nan), f"every seed: {shared.pop()}"
        return dict.fromkeys(METRICS, np.nan), "; ".join(f"seed {i}: {reason}" for i, reason in reasons.items())
    pairwise = spearman_matrix(runs)[np.triu_indices(n_seeds, k=1)].mean()
    half = n_seeds // 2
    halves = np.stack([runs[:half].mean(axis=0), runs[half:2 * half].mean(axis=0)])
    split_half = spearman_matrix(halves)[0, 1]
    if np.isnan(split_half):
        return {"spearman_seeds": float(pairwise), "split_half": np.nan, f"runs_for_{TARGET}": np.nan}, \
            "a half's seed-averaged scores are all equal"
    single = spearman_brown(split_half, 1 / half)
    return {"spearman_seeds": float(pairwise), "split_half": float(split_half),
            f"runs_for_{TARGET}": runs_for(TARGET, single)}, ""


def cross_scorer_rows(tables: list[ScoreTable], keys: dict, split: str, specs: list[str]) -> list[dict]:
    """Spearman between every two scorers on the same seed, averaged over seeds."""
    if not specs:  # no scorer left scores on every seed: no pair to correlate
        return []
    matrices = [spearman_matrix(np.stack([table.splits[split][spec] for spec in specs])) for table in tables]
    mean = np.mean(matrices, axis=0)
    reasons = {spec: "; ".join(sorted({reason for table in tables if (reason := unusable(table.splits[split][spec]))}))
               for spec in specs}  # what leaves a Spearman undefined: a score that is constant, NaN or infinite

    def why(a: str, b: str) -> str:
        return "; ".join(f"{spec}: {reasons[spec]}" for spec in (a, b) if reasons[spec])

    return [
        {**keys, "split": split, "scorer": a, "vs_scorer": b, "metric": "spearman_with", "value": float(mean[i, j]),
         "note": "" if np.isfinite(mean[i, j]) else why(a, b)}
        for i, a in enumerate(specs) for j, b in enumerate(specs) if i != j
    ]


def consistency(tables: list[ScoreTable]) -> pd.DataFrame:
    """Tidy rows of across-seed agreement per scorer and the cross-scorer correlation matrix."""
    if not tables:
        return pd.DataFrame(columns=ROW_COLUMNS)
    keys = {**unit_keys(tables[0], TASK), "seed": "all"}
    specs = tables[0].meta["scorers"]
    rows = []
    for split in SPLITS:
        scored = []
        for spec in specs:
            unscored = sorted(set(filter(None, (unscored_note(t, spec) for t in tables))))
            if unscored:
                values, note = dict.fromkeys(METRICS, np.nan), "; ".join(unscored)
            else:
                values, note = seed_metrics(np.stack([t.splits[split][spec] for t in tables]).astype(np.float64))
                scored.append(spec)
            rows += metric_rows(keys, split, spec, values, note)
        rows += cross_scorer_rows(tables, keys, split, scored)
    return pd.DataFrame(rows, columns=ROW_COLUMNS)
