"""What every task shares: the keys of a unit's rows, the scores each scorer left, and means over seeds."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from bench.schema import TASK_KEYS
from bench.store import ScoreTable

ROW_COLUMNS = [*TASK_KEYS, "value", "note"]


def unit_keys(table: ScoreTable, task: str) -> dict[str, str]:
    """The keys shared by every row of one unit's results on one task."""
    meta = table.meta
    return {"dataset": meta["dataset"], "model": meta["model"], "task": task,
            "label_mode": meta["label_mode"], "seed": str(meta["seed"])}


def failure_note(table: ScoreTable, spec: str) -> str:
    """``scorer failed: <error>`` if the scorer failed on this unit, else ``""``."""
    failure = table.meta["failures"].get(spec)
    return f"scorer failed: {failure}" if failure else ""


def scorer_scores(table: ScoreTable, split: str) -> Iterator[tuple[str, np.ndarray | None, str]]:
    """(spec, scores, "") for each scorer of the unit, or (spec, None, why) for one that failed."""
    for spec in table.meta["scorers"]:
        failure = failure_note(table, spec)
        if failure:
            yield spec, None, failure
        else:
            yield spec, np.asarray(table.splits[split][spec], dtype=np.float64), ""


def metric_rows(keys: dict, split: str, scorer: str, values: dict[str, float], note: str) -> list[dict]:
    return [{**keys, "split": split, "scorer": scorer, "metric": metric, "value": value, "note": note}
            for metric, value in values.items()]


def aggregate(rows: pd.DataFrame, over: str, label: str, std_name: str, ddof: int) -> pd.DataFrame:
    """Mean (and std) of ``value`` over the ``over`` column, as new rows with ``over`` set to ``label``.

    A mean is NaN when any value it averages is NaN; the notes of the averaged rows are kept.
    """
    group_keys = [k for k in TASK_KEYS if k != over]
    out = []
    for key, group in rows.groupby(group_keys, sort=False, dropna=False):
        values = group["value"].to_numpy(dtype=np.float64)
        notes = "; ".join(sorted(set(filter(None, group["note"]))))
        base = dict(zip(group_keys, key), **{over: label})
        std = values.std(ddof=ddof) if len(values) > ddof and np.isfinite(values).all() else np.nan
        out.append({**base, "value": values.mean(), "note": notes})
        out.append({**base, "metric": f"{base['metric']}_{std_name}", "value": std, "note": notes})
    return pd.DataFrame(out, columns=ROW_COLUMNS)


def with_seed_means(per_seed: list[dict]) -> pd.DataFrame:
    """Per-seed rows followed by their means over seeds (``seed=all``) and sample std (``<metric>_std_seeds``)."""
    rows = pd.DataFrame(per_seed, columns=ROW_COLUMNS)
    if rows.empty:
        return rows
    return pd.concat([rows, aggregate(rows, "seed", "all", "std_seeds", ddof=1)], ignore_index=True)
