"""Detection and rank metrics; detection takes the out-of-distribution (or mislabeled) class as positive.

Convention (hendrycks/outlier-exposure, and ``reference/methods.md`` section 1): scores are
oriented higher = more anomalous, OoD examples are positives.

* AUROC: probability that a random OoD example outscores a random in-distribution one (ties count half).
* AUPR-Out: average precision for finding the OoD examples by descending score.
* AUPR-In: average precision for finding the in-distribution examples by ascending score.
* FPR@95TPR: fraction of in-distribution examples flagged at the first threshold that flags
  95% of the OoD examples.

The values equal scikit-learn's ``roc_auc_score``, ``average_precision_score`` and
``roc_curve`` (ties included); they are computed here so that degenerate inputs give NaN
with a reason instead of a warning or an arbitrary number.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

OOD_METRICS = ("auroc", "aupr_in", "aupr_out", "fpr95")


def unusable(scores: np.ndarray) -> str:
    """Why these scores cannot rank anything (empty, non-finite or all equal), or ``""`` if they can."""
    if len(scores) == 0:
        return "no examples"
    if not np.isfinite(scores).all():
        return f"{np.count_nonzero(~np.isfinite(scores))} scores are NaN or infinite"
    if np.all(scores == scores[0]):
        return "all scores are equal, so they rank nothing"
    return ""


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Mann-Whitney AUROC of positives against negatives, ties counted half."""
    ranks = rankdata(np.concatenate([positive, negative]))
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _curve(scores: np.ndarray, is_positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positive counts at each distinct threshold, from the highest score down."""
    order = np.argsort(-scores, kind="mergesort")
    scores, is_positive = scores[order], is_positive[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    true_positives = np.cumsum(is_positive)[last_of_tie]
    return true_positives, last_of_tie + 1 - true_positives


def average_precision(scores: np.ndarray, is_positive: np.ndarray) -> float:
    """Sum over thresholds of precision times the gain in recall (scikit-learn's definition)."""
    is_positive = np.asarray(is_positive, dtype=bool)
    true_positives, false_positives = _curve(np.asarray(scores, dtype=np.float64), is_positive)
    precision = true_positives / (true_positives + false_positives)
    recall = true_positives / is_positive.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def fpr_at_tpr(positive: np.ndarray, negative: np.ndarray, tpr: float = 0.95) -> float:
    """False positive rate at the first threshold whose true positive rate reaches ``tpr``."""
    scores = np.concatenate([positive, negative])
    is_positive = np.r_[np.ones(len(positive), bool), np.zeros(len(negative), bool)]
    true_positives, false_positives = _curve(scores, is_positive)
    first = np.argmax(true_positives >= tpr * len(positive))
    return float(false_positives[first] / len(negative))


def ood_metrics(inlier: np.ndarray, outlier: np.ndarray) -> tuple[dict[str, float], str]:
    """AUROC, AUPR-In, AUPR-Out and FPR@95TPR of outlier vs inlier scores.

    Returns the metrics and an empty note, or all-NaN metrics and a note saying why.
    """
    inlier, outlier = np.asarray(inlier, dtype=np.float64), np.asarray(outlier, dtype=np.float64)
    both = np.concatenate([inlier, outlier])
    reason = "no in-distribution or no OoD examples" if len(inlier) == 0 or len(outlier) == 0 else unusable(both)
    if reason:
        return dict.fromkeys(OOD_METRICS, float("nan")), reason
    is_ood = np.r_[np.zeros(len(inlier), bool), np.ones(len(outlier), bool)]
    return {
        "auroc": auroc(outlier, inlier),
        "aupr_in": average_precision(-both, ~is_ood),
        "aupr_out": average_precision(both, is_ood),
        "fpr95": fpr_at_tpr(outlier, inlier),
    }, ""


def precision_at_k(scores: np.ndarray, is_positive: np.ndarray) -> float:
    """Precision among the k highest scores, k = the number of positives.

    Scores tied at the k-th place are shared out by their positive fraction: the expected
    precision under a random order of the ties, so the value does not depend on input order.
    """
    is_positive = np.asarray(is_positive, dtype=bool)
    k = int(is_positive.sum())
    threshold = np.sort(scores)[::-1][k - 1]
    above, tied = scores > threshold, scores == threshold
    from_ties = (k - above.sum()) * is_positive[tied].mean()
    return float((is_positive[above].sum() + from_ties) / k)


def spearman_matrix(rows: np.ndarray) -> np.ndarray:
    """Spearman correlation between every pair of rows (ties get average ranks); NaN for a constant row."""
    ranks = rankdata(rows, axis=1)
    ranks -= ranks.mean(axis=1, keepdims=True)
    norms = np.sqrt((ranks**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ranks @ ranks.T) / np.outer(norms, norms)


def spearman_brown(rho: float, factor: float) -> float:
    """Reliability of an average of ``factor`` times as many runs as those giving correlation ``rho``."""
    return factor * rho / (1 + (factor - 1) * rho)


def runs_for(target: float, rho_single: float) -> float:
    """Runs to average for their mean to correlate ``target`` with another such mean (Spearman-Brown, inverted)."""
    if rho_single <= 0:
        return float("inf")
    return float(max(1.0, np.ceil(target * (1 - rho_single) / (rho_single * (1 - target)) - 1e-9)))
