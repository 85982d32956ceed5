"""Detection and rank metrics; detection takes the out-of-distribution (or mislabeled) class as positive.

Convention (hendrycks/outlier-exposure, and ``reference/methods.md`` section 1): scores are
oriented higher = more anomalous, OoD examples are positives.

* AUROC: probability that a random OoD example outscores a random in-distribution one (ties count half).
* AUPR-Out: average precision for finding the OoD examples by descending score.
* AUPR-In: average precision for finding the in-distribution examples by ascending score.
* FPR@95TPR: fraction of in-distribution examples flagged at the first threshold that flags
  95% of the OoD examples.

The values come from scikit-learn's ``roc_auc_score``, ``average_precision_score`` and
``roc_curve`` and scipy's ``spearmanr`` (ties included); the wrappers here give degenerate
input NaN with a reason instead of a warning, an exception or an arbitrary number.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

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


def _labels(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """True for the positives, then False for the negatives (the order of ``np.r_[positive, negative]``)."""
    return np.r_[np.ones(len(positive), bool), np.zeros(len(negative), bool)]


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Mann-Whitney AUROC of positives against negatives, ties counted half."""
    return float(roc_auc_score(_labels(positive, negative), np.r_[positive, negative]))


def average_precision(scores: np.ndarray, is_positive: np.ndarray) -> float:
    """Sum over thresholds of precision times the gain in recall (scikit-learn's definition)."""
    return float(average_precision_score(np.asarray(is_positive, dtype=bool), np.asarray(scores, dtype=np.float64)))


def fpr_at_tpr(positive: np.ndarray, negative: np.ndarray, tpr: float = 0.95) -> float:
    """False positive rate at the first threshold whose true positive count reaches ``tpr`` times the positives.

    Counts, not rates, are compared (``tps >= tpr * n`` rather than ``tps / n >= tpr``) so that a
    rounding of ``tps / n`` cannot move the threshold; ``rint(rate * n)`` recovers the count exactly.
    """
    false_rate, true_rate, _ = roc_curve(_labels(positive, negative), np.r_[positive, negative],
                                         drop_intermediate=False)
    first = np.argmax(np.rint(true_rate * len(positive)) >= tpr * len(positive))
    return float(false_rate[first])


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
    """Spearman correlation between every pair of rows (ties get average ranks); NaN for a constant row.

    ``spearmanr`` alone would return one NaN for the whole matrix if any row is constant, and a
    scalar for two rows, so it is given only the rows that vary and its result placed in the matrix.
    """
    rows = np.asarray(rows, dtype=np.float64)
    varies = np.flatnonzero(np.ptp(rows, axis=1) > 0)  # NaN rows count as constant: their rho is NaN too
    matrix = np.full((len(rows), len(rows)), np.nan)
    matrix[varies, varies] = 1.0
    if len(varies) >= 2:
        rho = spearmanr(rows[varies], axis=1).statistic
        matrix[np.ix_(varies, varies)] = rho if np.ndim(rho) == 2 else [[1.0, rho], [rho, 1.0]]
    return matrix


def spearman_brown(rho: float, factor: float) -> float:
    """Reliability of an average of ``factor`` times as many runs as those giving correlation ``rho``."""
    return factor * rho / (1 + (factor - 1) * rho)


def runs_for(target: float, rho_single: float) -> float:
    """Runs to average for their mean to correlate ``target`` with another such mean (Spearman-Brown, inverted)."""
    if rho_single <= 0:
        return float("inf")
    return float(max(1.0, np.ceil(target * (1 - rho_single) / (rho_single * (1 - target)) - 1e-9)))
