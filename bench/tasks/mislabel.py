"""The mislabel task: find the training labels that label noise shuffled (the VoG paper's Sec. 4.1).

Only units trained with ``--label-noise`` have anything to find. The shuffled examples are
the positives, ranked by each scorer over the training split:

* ``auroc`` and ``ap`` (average precision);
* ``precision_at_k``: precision among the k top-scored examples, k = the number shuffled;
* ``welch_t`` and ``welch_p``: Welch's two-sample t-test of shuffled against clean scores
  (unequal variances, two-sided), as in the paper, which reports p < 0.001 for VoG.

Rows per scorer and seed, then the mean over seeds (``seed=all``) with its ``std_seeds`` and its 95%
interval (t over seeds; where the seeds agree exactly, one seed or a scorer that does not depend on
it, an interval over examples stratified by the noisy flag, for ``auroc`` and ``ap``: DeLong's and the
delta method's, or a bootstrap).

Beside the scorers, the trained model's own rows (scorer ``(model)``) say whether it memorised:
``train_accuracy``, its final predictions against the training labels as given (noisy ones
included), and ``memorised``, the fraction of shuffled labels it predicts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import ttest_ind

from bench.metrics import auroc, average_precision, precision_at_k, unusable
from bench.schema import MODEL_ROW
from bench.store import ScoreTable
from bench.tasks.rows import (
    FROM_EXAMPLES,
    OverExamples,
    metric_rows,
    scorer_scores,
    stratified_intervals,
    unit_keys,
    with_seed_means,
)

TASK = "mislabel"
SPLIT = "train"
METRICS = ("auroc", "ap", "precision_at_k", "welch_t", "welch_p")
POLICIES = {"auroc": FROM_EXAMPLES, "ap": FROM_EXAMPLES}  # the others: t over seeds


def mislabel_metrics(scores: np.ndarray, shuffled: np.ndarray) -> tuple[dict[str, float], str]:
    """The task's metrics for one scorer, or all NaN and the reason."""
    reason = unusable(scores)
    if reason:
        return dict.fromkeys(METRICS, np.nan), reason
    test = ttest_ind(scores[shuffled], scores[~shuffled], equal_var=False)
    return {
        "auroc": auroc(scores[shuffled], scores[~shuffled]),
        "ap": average_precision(scores, shuffled),
        "precision_at_k": precision_at_k(scores, shuffled),
        "welch_t": float(test.statistic),
        "welch_p": float(test.pvalue),
    }, ""


def shuffled_labels(table: ScoreTable) -> np.ndarray:
    return np.asarray(table.splits[SPLIT]["noisy"], dtype=bool)


def mislabel(tables: list[ScoreTable], how: OverExamples = OverExamples()) -> pd.DataFrame:
    """Tidy rows of the mislabel metrics for every scorer and seed; empty without label noise."""
    noisy = [table for table in tables if shuffled_labels(table).any() and not shuffled_labels(table).all()]
    rows = []
    for table in noisy:
        keys = unit_keys(table, TASK)
        shuffled = shuffled_labels(table)
        fitted = table.splits[SPLIT]["pred"] == table.splits[SPLIT]["label"]
        rows += metric_rows(keys, SPLIT, MODEL_ROW, {"train_accuracy": float(fitted.mean()),
                                                 "memorised": float(fitted[shuffled].mean())}, "")
        for spec, scores, failure in scorer_scores(table, SPLIT):
            values, note = (dict.fromkeys(METRICS, np.nan), failure) if failure else mislabel_metrics(scores, shuffled)
            rows += metric_rows(keys, SPLIT, spec, values, note)

    def intervals(scorers: set[str]) -> dict:
        found = {}
        for spec, scores, failure in scorer_scores(noisy[0], SPLIT):
            if spec in scorers and not failure and not unusable(scores):
                found.update(stratified_intervals(SPLIT, spec, shuffled_labels(noisy[0]), scores,
                                                  {"auroc": "auroc", "ap": "aupr_out"}, how))
        return found

    return with_underflow_notes(with_seed_means(rows, POLICIES, intervals if how.wanted and noisy else None))


UNDERFLOW = f"Welch's p underflows: below {np.finfo(float).tiny:.1e}, the smallest float, so it is written as 0"


def with_underflow_notes(rows: pd.DataFrame) -> pd.DataFrame:
    """A Welch p of 0 is one too small for a float, not 0: its rows, and the scorer's row over seeds, say so in
    their note."""
    if rows.empty:
        return rows
    zero = rows[(rows.metric == "welch_p") & (rows.value == 0)]
    marked = (rows.metric == "welch_p") & rows.scorer.isin(set(zero.scorer)) & (
        (rows.seed == "all") | rows.index.isin(zero.index))
    noted = rows.note.where(rows.note == "", rows.note + "; ") + UNDERFLOW
    return rows.assign(note=rows.note.mask(marked, noted))
