"""The boundary task: does a score rank highest the examples nearest the Bayes decision boundary?

The VoG paper's Fig. 1 claims so for VoG on two Gaussian blobs. Only data whose generator knows
each example's distance to the Bayes boundary (``two-blobs``: a ``boundary_distance`` column in the
score table) has anything to measure. Per such split, scorer and seed:

* ``nearness_spearman``: Spearman correlation of the score with the nearness to the boundary
  (minus the distance): 1 when the score orders the examples exactly from nearest to farthest,
  0 when it has nothing to do with the boundary.

Rows per scorer and seed, then the mean over seeds (``seed=all``) with its ``std_seeds`` and its 95%
interval (t over seeds; where the seeds agree exactly, one over examples: Fisher's z with Bonett & Wright's
variance, or a percentile bootstrap).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from bench.metrics import unusable
from bench.influence import fisher_interval
from bench.schema import BOOTSTRAP, FISHER_Z
from bench.stats import spearman_bootstrap_interval
from bench.store import ScoreTable
from bench.tasks.rows import (
    BOOTSTRAP_SEED,
    FROM_EXAMPLES,
    OverExamples,
    metric_rows,
    scorer_scores,
    unit_keys,
    with_seed_means,
)

TASK = "boundary"
METRIC = "nearness_spearman"
COLUMN = "boundary_distance"


def nearness_spearman(scores: np.ndarray, distance: np.ndarray) -> tuple[float, str]:
    reason = unusable(scores)
    return (np.nan, reason) if reason else (float(spearmanr(scores, -distance).statistic), "")


def boundary(tables: list[ScoreTable], how: OverExamples = OverExamples()) -> pd.DataFrame:
    """Tidy rows of each scorer's Spearman with the nearness to the Bayes boundary; empty for data without one."""
    splits = [name for name, columns in tables[0].splits.items() if COLUMN in columns] if tables else []
    rows = []
    for table in tables:
        keys = unit_keys(table, TASK)
        for split in splits:
            distance = table.splits[split][COLUMN]
            for spec, scores, failure in scorer_scores(table, split):
                value, note = (np.nan, failure) if failure else nearness_spearman(scores, distance)
                rows += metric_rows(keys, split, spec, {METRIC: value}, note)

    def intervals(scorers: set[str]) -> dict:
        found = {}
        for split in splits:
            nearness = -tables[0].splits[split][COLUMN]
            for spec, scores, failure in scorer_scores(tables[0], split):
                if spec in scorers and not failure and not unusable(scores):
                    if how.method == "bootstrap":
                        low, high = spearman_bootstrap_interval(scores, nearness, how.resamples, BOOTSTRAP_SEED)
                    else:
                        low, high = fisher_interval(nearness_spearman(scores, -nearness)[0], len(scores))
                    found[(split, spec, METRIC)] = (low, high, BOOTSTRAP if how.method == "bootstrap" else FISHER_Z)
        return found

    return with_seed_means(rows, {METRIC: FROM_EXAMPLES}, intervals if how.wanted else None)
