"""The OoD task: clean test split (in-distribution) against each corrupted split (OoD).

Rows per scorer, corruption and seed, then aggregates:

* ``seed=all``: the mean over seeds, and ``<metric>_std_seeds`` (sample std, ddof=1);
* ``split=mean``: the mean over corruptions, and ``<metric>_std_corruptions`` (population
  std over the corruptions, ddof=0, the ± of the VoG paper's Table 1);
* ``split=mean, seed=all``: the mean over corruptions of the seed means, its std over
  corruptions, and the std over seeds of the per-seed corruption means.

An aggregate is NaN when any value it averages is NaN; its note carries the reasons.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.metrics import OOD_METRICS, ood_metrics
from bench.store import ScoreTable
from bench.tasks.rows import (
    ROW_COLUMNS,
    aggregate,
    metric_rows,
    scorer_scores,
    unit_keys,
)

TASK = "ood"
IN_DISTRIBUTION = "test"


def per_seed_rows(table: ScoreTable) -> list[dict]:
    keys = unit_keys(table, TASK)
    rows = []
    inlier = {spec: scores for spec, scores, _ in scorer_scores(table, IN_DISTRIBUTION)}
    for split in table.meta["ood_splits"]:
        for spec, outlier, failure in scorer_scores(table, split):
            if failure:
                values, note = dict.fromkeys(OOD_METRICS, np.nan), failure
            else:
                values, note = ood_metrics(inlier[spec], outlier)
            rows += metric_rows(keys, split, spec, values, note)
    return rows


def ood(tables: list[ScoreTable]) -> pd.DataFrame:
    """Tidy rows of AUROC, AUPR-In, AUPR-Out and FPR@95TPR for every scorer, corruption and seed."""
    per_seed = pd.DataFrame([row for table in tables for row in per_seed_rows(table)], columns=ROW_COLUMNS)
    if per_seed.empty:  # a dataset without OoD splits: nothing to measure
        return per_seed
    over_seeds = aggregate(per_seed, "seed", "all", "std_seeds", ddof=1)
    over_corruptions = aggregate(per_seed, "split", "mean", "std_corruptions", ddof=0)
    seed_means = over_seeds[over_seeds.metric.isin(OOD_METRICS)]
    corruption_means = over_corruptions[over_corruptions.metric.isin(OOD_METRICS)]
    overall = pd.concat([
        aggregate(seed_means, "split", "mean", "std_corruptions", ddof=0),
        aggregate(corruption_means, "seed", "all", "std_seeds", ddof=1).query("metric.str.endswith('_std_seeds')"),
    ])
    return pd.concat([per_seed, over_seeds, over_corruptions, overall], ignore_index=True)
