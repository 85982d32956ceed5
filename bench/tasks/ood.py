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

from bench.leaderboard import KEYS
from bench.metrics import OOD_METRICS, ood_metrics
from bench.results import ScoreTable

TASK = "ood"
IN_DISTRIBUTION = "test"


def per_seed_rows(table: ScoreTable) -> list[dict]:
    meta = table.meta
    keys = {"dataset": meta["dataset"], "model": meta["model"], "task": TASK,
            "label_mode": meta["label_mode"], "seed": str(meta["seed"])}
    rows = []
    for scorer in meta["scorers"]:
        failure = meta["failures"].get(scorer)
        for split in meta["ood_splits"]:
            if failure:
                values, note = dict.fromkeys(OOD_METRICS, np.nan), f"scorer failed: {failure}"
            else:
                values, note = ood_metrics(table.splits[IN_DISTRIBUTION][scorer], table.splits[split][scorer])
            rows += [{**keys, "split": split, "scorer": scorer, "metric": metric, "value": value, "note": note}
                     for metric, value in values.items()]
    return rows


def _aggregate(rows: pd.DataFrame, over: str, label: str, std_name: str, ddof: int) -> pd.DataFrame:
    """Mean (and std) of ``value`` over the ``over`` column, as new rows with ``over`` set to ``label``."""
    group_keys = [k for k in KEYS if k != over]
    out = []
    for key, group in rows.groupby(group_keys, sort=False, dropna=False):
        values = group["value"].to_numpy(dtype=np.float64)
        notes = "; ".join(sorted(set(filter(None, group["note"]))))
        base = dict(zip(group_keys, key), **{over: label})
        std = values.std(ddof=ddof) if len(values) > ddof else np.nan
        out.append({**base, "value": values.mean(), "note": notes})
        out.append({**base, "metric": f"{base['metric']}_{std_name}", "value": std, "note": notes})
    return pd.DataFrame(out)


def ood(tables: list[ScoreTable]) -> pd.DataFrame:
    """Tidy rows of AUROC, AUPR-In, AUPR-Out and FPR@95TPR for every scorer, corruption and seed."""
    per_seed = pd.DataFrame([row for table in tables for row in per_seed_rows(table)], columns=[*KEYS, "value", "note"])
    if per_seed.empty:  # a dataset without OoD splits: nothing to measure
        return per_seed
    over_seeds = _aggregate(per_seed, "seed", "all", "std_seeds", ddof=1)
    over_corruptions = _aggregate(per_seed, "split", "mean", "std_corruptions", ddof=0)
    seed_means = over_seeds[over_seeds.metric.isin(OOD_METRICS)]
    corruption_means = over_corruptions[over_corruptions.metric.isin(OOD_METRICS)]
    overall = pd.concat([
        _aggregate(seed_means, "split", "mean", "std_corruptions", ddof=0),
        _aggregate(corruption_means, "seed", "all", "std_seeds", ddof=1).query("metric.str.endswith('_std_seeds')"),
    ])
    return pd.concat([per_seed, over_seeds, over_corruptions, overall], ignore_index=True)
