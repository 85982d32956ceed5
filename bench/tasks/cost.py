"""The cost task: what each score cost to compute, per unit, as the probe measured it (``bench.probe``).

* ``seconds``: the scorer's own calls plus its share of the probe's passes, where a pass
  several scorers use is divided equally among them (the rule is in ``bench.probe``). Training
  is not in it: every model-based score needs the same trained model.
* ``state_bytes``: the peak size of its running state.

A score reused from another unit (a detector on pixels, shared by every seed; a column of an
earlier run) carries the cost recorded where it was computed. Rows per scorer and seed, then the
mean over seeds and its 95% t-interval, as in the other tasks; a cost measured once and reused by
every seed has no interval (its copies are not measurements).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.store import ScoreTable
from bench.tasks.rows import ROW_COLUMNS, Policy, metric_rows, unit_keys, unscored_note, with_seed_means

TASK = "cost"
SPLIT = "all"  # a unit's cost covers every split
METRICS = ("seconds", "state_bytes")
NOT_MEASURED = "not measured: the unit was computed by bench < 0.5, which did not measure costs"
MEASURED_ONCE = "measured once (one seed, or a score reused by every seed): no spread or interval over seeds"
POLICIES = dict.fromkeys(METRICS, Policy(seeds_agree=""))  # copies of one measurement have no interval


def cost(tables: list[ScoreTable]) -> pd.DataFrame:
    """Tidy rows of every scorer's seconds and peak state bytes per seed; NaN for a failed scorer (its cost
    stops where it failed) and for units that did not record costs, with the reason; no rows if none did."""
    if not any("cost" in table.meta for table in tables):
        return pd.DataFrame(columns=ROW_COLUMNS)
    rows = []
    for table in tables:
        keys = unit_keys(table, TASK)
        measured = table.meta.get("cost", {})
        for spec in table.meta["scorers"]:
            note = unscored_note(table, spec) or ("" if spec in measured else NOT_MEASURED)
            values = {metric: np.nan if note else float(measured[spec][metric]) for metric in METRICS}
            rows += metric_rows(keys, SPLIT, spec, values, note)
    rows = with_seed_means(rows, POLICIES)
    statistics = rows[["value", "std_seeds", "ci_low", "ci_high"]]
    unexplained = (rows.seed == "all") & statistics.isna().any(axis=1) & (rows.note == "")  # NaN of its own making
    return rows.assign(note=rows.note.mask(unexplained, MEASURED_ONCE))
