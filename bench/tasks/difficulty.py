"""The difficulty task: does a high score mean the final model gets the example wrong?

On the clean test split, with error = the final model's prediction differs from the true label:

* ``error_decile_01`` .. ``error_decile_10``: test error in each decile of the score, lowest
  scores first (the VoG paper's Fig. 4). Deciles are cut on average ranks, so tied scores
  share a decile; a decile left empty by ties is NaN.
* ``error_ratio``: top-decile error over bottom-decile error (inf when the bottom decile
  has no errors and the top one has some);
* ``error_auroc``: AUROC of the score for finding the misclassified examples, the summary
  that uses every example.
* ``early_late_flip`` on the scorer ``<early spec> vs <late spec>``, for every scorer run with
  both ``window=early`` and ``window=late`` (otherwise equal): 1 when the top decile has less
  error than the bottom one early in training and more late in training (the paper's Figs. 5
  and 8), else 0; its mean over seeds is the fraction of seeds that flip.

Rows per scorer and seed, then the mean over seeds (``seed=all``) and its ``_std_seeds``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from bench.metrics import auroc, unusable
from bench import registry
from bench.results import ScoreTable
from bench.tasks.rows import metric_rows, scorer_scores, unit_keys, with_seed_means

TASK = "difficulty"
SPLIT = "test"
DECILES = [f"error_decile_{k:02d}" for k in range(1, 11)]
METRICS = (*DECILES, "error_ratio", "error_auroc")


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


def window_pairs(specs: list[str]) -> list[tuple[str, str]]:
    """(early spec, late spec) for each scorer run with window=early and window=late, other parameters
    equal, defaults included (a default window of late is named in neither spec)."""
    known = registry.available()

    def parameters(spec: str) -> tuple[str, dict]:
        name, params = registry.parse_spec(spec)
        return name, {**(known[name].defaults() if name in known else {}), **params}

    parsed = {spec: parameters(spec) for spec in specs}
    pairs = []
    for early, (name, params) in parsed.items():
        if params.get("window") == "early":
            late = [spec for spec, (other, other_params) in parsed.items()
                    if other == name and other_params == {**params, "window": "late"}]
            pairs += [(early, late[0])] if late else []
    return pairs


def per_seed_rows(table: ScoreTable) -> list[dict]:
    keys = unit_keys(table, TASK)
    columns = table.splits[SPLIT]
    wrong = columns["pred"] != columns["label"]
    rows, top_beats_bottom = [], {}
    for spec, scores, failure in scorer_scores(table, SPLIT):
        values, note = (dict.fromkeys(METRICS, np.nan), failure) if failure else difficulty_metrics(scores, wrong)
        rows += metric_rows(keys, SPLIT, spec, values, note)
        top_beats_bottom[spec] = values["error_decile_10"] - values["error_decile_01"]
    for early, late in window_pairs(table.meta["scorers"]):
        gaps = top_beats_bottom[early], top_beats_bottom[late]
        flip = float(gaps[0] < 0 < gaps[1]) if np.isfinite(gaps).all() else np.nan
        note = "" if np.isfinite(flip) else "a decile error is NaN"
        rows += metric_rows(keys, SPLIT, f"{early} vs {late}", {"early_late_flip": flip}, note)
    return rows


def difficulty(tables: list[ScoreTable]) -> pd.DataFrame:
    """Tidy rows of test error by score decile, its top/bottom ratio and AUROC, and the early/late flip."""
    return with_seed_means([row for table in tables for row in per_seed_rows(table)])
