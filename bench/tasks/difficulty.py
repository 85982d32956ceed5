"""The difficulty task: does a high score mean the final model gets the example wrong?

On the clean test split, with error = the final model's prediction differs from the true label:

* ``error_decile_01`` .. ``error_decile_10``: test error in each decile of the score, lowest
  scores first (the VoG paper's Fig. 4). Deciles are cut on average ranks, so tied scores
  share a decile; a decile left empty by ties is NaN.
* ``error_ratio``: top-decile error over bottom-decile error (inf when the bottom decile
  has no errors and the top one has some);
* ``error_auroc``: AUROC of the score for finding the misclassified examples, the summary
  that uses every example.
* ``early_late_flip`` on the scorer ``<early spec>`` with ``vs_scorer`` ``<late spec>``, for every two variants of
  a scorer that differ in one parameter and read checkpoints one entirely before the other
  (as stored with the unit: each variant's full parameters and the epochs it observed, e.g.
  VoG's ``window=early`` and ``window=late``): 1 when the top decile has less error than the
  bottom one early in training and more late in training (the paper's Figs. 5 and 8), else 0;
  its mean over seeds is the fraction of seeds that flip, with the exact binomial interval.

Rows per scorer and seed, then the mean over seeds (``seed=all``) with its ``std_seeds`` and its 95%
interval (t over seeds; where the seeds agree exactly, for ``error_auroc``, DeLong's interval over examples or a
bootstrap).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from bench.metrics import auroc, unusable
from bench.schema import BINOMIAL
from bench.specs import parse_spec
from bench.store import ScoreTable
from bench.tasks.rows import (
    FROM_EXAMPLES,
    OverExamples,
    Policy,
    metric_rows,
    scorer_scores,
    stratified_intervals,
    unit_keys,
    with_seed_means,
)

TASK = "difficulty"
SPLIT = "test"
DECILES = [f"error_decile_{k:02d}" for k in range(1, 11)]
METRICS = (*DECILES, "error_ratio", "error_auroc")
# the flip over seeds is a fraction of seeds: its interval is the exact binomial (Clopper-Pearson) one, which
# stays within [0, 1], rather than the t-interval
POLICIES = {"error_auroc": FROM_EXAMPLES, "early_late_flip": Policy(over_seeds=BINOMIAL)}  # the others: t over seeds


def deciles(scores: np.ndarray) -> np.ndarray:
    """The decile (0 = lowest scores .. 9) of each example, by average rank."""
    return np.minimum(((rankdata(scores) - 0.5) * 10 / len(scores)).astype(int), 9)


def difficulty_metrics(scores: np.ndarray, wrong: np.ndarray) -> tuple[dict[str, float], str]:
    """Error by score decile, the top/bottom ratio and the error AUROC, or all NaN and the reason."""
    reason = unusable(scores)
    if reason:
        return dict.fromkeys(METRICS, np.nan), reason
    bins = deciles(scores)
    errors = [wrong[bins == k].mean() if np.any(bins == k) else np.nan for k in range(10)]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(np.float64(errors[9]) / np.float64(errors[0]))
    has_errors = wrong.any() and not wrong.all()
    notes = []
    if np.isnan(errors).any():
        notes.append("tied scores leave some deciles empty")
    if not has_errors:
        notes.append("the model gets every test example right (or every one wrong): no errors to rank")
    elif errors[0] == 0:
        notes.append("no errors in the bottom decile")
    values = {**dict(zip(DECILES, map(float, errors))), "error_ratio": ratio,
              "error_auroc": auroc(scores[wrong], scores[~wrong]) if has_errors else np.nan}
    return values, "; ".join(notes)


def window_pairs(table: ScoreTable) -> list[tuple[str, str]]:
    """(early spec, late spec) for every two scorers of the unit with the same name whose full parameters
    differ in one value and whose observed checkpoints all come before the other's."""
    full = {spec: parse_spec(table.meta["config"]["scorers"][spec]) for spec in table.meta["scorers"]}
    observed = table.meta["observed"]
    pairs = []
    for early, (name, params) in full.items():
        for late, (other, other_params) in full.items():
            differing = [key for key in params if params[key] != other_params.get(key)]
            if (other == name and params.keys() == other_params.keys() and len(differing) == 1
                    and observed[early] and observed[late] and max(observed[early]) < min(observed[late])):
                pairs.append((early, late))
    return pairs


def misclassified(table: ScoreTable) -> np.ndarray:
    columns = table.splits[SPLIT]
    return columns["pred"] != columns["label"]


def per_seed_rows(table: ScoreTable) -> list[dict]:
    keys = unit_keys(table, TASK)
    wrong = misclassified(table)
    rows, top_beats_bottom = [], {}
    for spec, scores, failure in scorer_scores(table, SPLIT):
        values, note = (dict.fromkeys(METRICS, np.nan), failure) if failure else difficulty_metrics(scores, wrong)
        rows += metric_rows(keys, SPLIT, spec, values, note)
        top_beats_bottom[spec] = values["error_decile_10"] - values["error_decile_01"]
    for early, late in window_pairs(table):
        gaps = top_beats_bottom[early], top_beats_bottom[late]
        flip = float(gaps[0] < 0 < gaps[1]) if np.isfinite(gaps).all() else np.nan
        note = "" if np.isfinite(flip) else "a decile error is NaN"
        rows += metric_rows(keys, SPLIT, early, {"early_late_flip": flip}, note, vs_scorer=late)
    return rows


def difficulty(tables: list[ScoreTable], how: OverExamples = OverExamples()) -> pd.DataFrame:
    """Tidy rows of test error by score decile, its top/bottom ratio and AUROC, and the early/late flip;
    where the seeds agree exactly, the error AUROC's interval is one over examples stratified by error (``how``)."""
    def intervals(scorers: set[str]) -> dict:
        wrong = misclassified(tables[0])
        found = {}
        for spec, scores, failure in scorer_scores(tables[0], SPLIT):
            if spec in scorers and not failure and not unusable(scores) and wrong.any() and not wrong.all():
                found.update(stratified_intervals(SPLIT, spec, wrong, scores, {"error_auroc": "auroc"}, how))
        return found

    return with_seed_means([row for table in tables for row in per_seed_rows(table)], POLICIES,
                           intervals if how.wanted else None)
