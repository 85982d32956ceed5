"""Detection and rank metrics; detection takes the out-of-distribution (or mislabeled) class as positive.

Convention (hendrycks/outlier-exposure, and ``reference/methods.md`` section 1): scores are
oriented higher = more anomalous, OoD examples are positives.

* AUROC: probability that a random OoD example outscores a random in-distribution one (ties count half).
* AUPR-Out: average precision for finding the OoD examples by descending score.
* AUPR-In: average precision for finding the in-distribution examples by ascending score.
* FPR@95TPR (``fpr95``): fraction of in-distribution examples flagged at the first threshold from the top that
  flags 95% of the OoD examples: OpenOOD v1.5's and pytorch-ood's FPR95TPR, OoD positive.
* FPR@95TPR with in-distribution positive (``fpr95_id``): fraction of OoD examples accepted (scored at or below
  the threshold) at the first threshold from the bottom that accepts 95% of the in-distribution examples: the
  ODIN and energy papers' FPR at 95% TPR (and OpenOOD v1's). Another point of the same ROC curve (OoD positive),
  1 - TPR at its point of largest FPR not above 0.05: not a function of ``fpr95``.

The detection metrics come from one sort: the scores fall into groups of equal score, and each
metric is a cumulative sum over the groups' counts of each class (``group_metrics``; the same sums
over resampled counts give ``bench.stats``'s bootstrap, and with each example's share
``bench.influence``'s intervals). They equal scikit-learn's ``roc_auc_score``,
``average_precision_score`` and ``roc_curve`` to float rounding (``tests/test_metrics.py``), at a
fraction of their cost: a run computes them for every scorer and OoD split. Rank correlations are
the Pearson correlation of scipy's ``rankdata`` ranks (ties get average ranks). Degenerate input gets NaN with a reason instead of a
warning, an exception or an arbitrary number.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata

OOD_METRICS = ("auroc", "aupr_in", "aupr_out", "fpr95", "fpr95_id")


def unusable(scores: np.ndarray) -> str:
    """Why these scores cannot rank anything (empty, non-finite or all equal), or ``""`` if they can."""
    if len(scores) == 0:
        return "no examples"
    if not np.isfinite(scores).all():
        return f"{np.count_nonzero(~np.isfinite(scores))} scores are NaN or infinite"
    if np.all(scores == scores[0]):
        return "all scores are equal, so they rank nothing"
    return ""


def groups(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each example's group (the rank of its distinct score, ascending) and each group's counts of negatives and
    of positives: every detection metric is a cumulative sum over these counts (ties are one group)."""
    distinct, group = np.unique(scores, return_inverse=True)
    return (group, np.bincount(group[~labels], minlength=len(distinct)).astype(np.float64),
            np.bincount(group[labels], minlength=len(distinct)).astype(np.float64))


def _precision_weighted(hits: np.ndarray, found: np.ndarray, flagged: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Average precision: over the thresholds, the recall gained there (hits / total) times the precision
    there (found / flagged, counting everything at or beyond the threshold); scikit-learn's definition."""
    precision = np.divide(found, flagged, out=np.zeros_like(found), where=flagged > 0)
    return np.einsum("ij,ij->i", hits, precision) / total


def group_metrics(negative: np.ndarray, positive: np.ndarray, metrics: Sequence[str] = OOD_METRICS,
                  tpr: float = 0.95) -> dict[str, np.ndarray]:
    """The metrics of each row of per-group weights of negatives and positives (groups in ascending score, ties
    one group; a row of counts is one data set, a row of bootstrap counts one resample); NaN where a row has no
    weight on one class.

    All come from the two ascending cumulative sums: what lies at or above group j is the total less
    what lies below it.
    """
    negative, positive = np.atleast_2d(negative), np.atleast_2d(positive)
    neg_through, pos_through = np.cumsum(negative, axis=1), np.cumsum(positive, axis=1)
    n_neg, n_pos = neg_through[:, -1:], pos_through[:, -1:]
    out = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        if "auroc" in metrics:  # Mann-Whitney: each positive beats the negatives below it, ties count half
            beaten = neg_through - 0.5 * negative
            out["auroc"] = np.einsum("ij,ij->i", positive, beaten) / (n_pos * n_neg)[:, 0]
        if "aupr_in" in metrics:  # in-distribution found by ascending score
            out["aupr_in"] = _precision_weighted(negative, neg_through, neg_through + pos_through, n_neg[:, 0])
        if {"aupr_out", "fpr95"} & set(metrics):  # OoD found by descending score
            pos_from = n_pos - pos_through + positive
            neg_from = n_neg - neg_through + negative
        if "aupr_out" in metrics:
            out["aupr_out"] = _precision_weighted(positive, pos_from, pos_from + neg_from, n_pos[:, 0])
        if "fpr95" in metrics:  # the first threshold from the top whose true positives reach the rate
            last = reached(pos_from, tpr * n_pos)
            out["fpr95"] = neg_from[np.arange(len(last)), last] / n_neg[:, 0]
        if "fpr95_id" in metrics:  # the same from the bottom, the classes swapped: negatives accepted at or below
            first = negative.shape[1] - 1 - reached(neg_through[:, ::-1], tpr * n_neg)
            out["fpr95_id"] = pos_through[np.arange(len(first)), first] / n_pos[:, 0]
    return {name: out[name] for name in metrics}


def reached(pos_from: np.ndarray, count: np.ndarray | float) -> np.ndarray:
    """Per row, the highest group whose positives at or above it number at least ``count``: the first threshold
    from the top to flag them. Counts, not rates, are compared (``tps >= tpr * n`` rather than ``tps / n >= tpr``)
    so that a rounding of ``tps / n`` cannot move the threshold."""
    return np.count_nonzero(np.atleast_2d(pos_from) >= count, axis=1) - 1


def detection_metrics(labels: np.ndarray, scores: np.ndarray, metrics: Sequence[str] = OOD_METRICS,
                      tpr: float = 0.95) -> dict[str, float]:
    """The metrics of ``scores`` (higher = more anomalous) for finding the positives of ``labels``, from one sort."""
    _, negative, positive = groups(np.asarray(labels, dtype=bool), np.asarray(scores, dtype=np.float64))
    return {name: float(values[0]) for name, values in group_metrics(negative, positive, metrics, tpr).items()}


def _labels(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """True for the positives, then False for the negatives (the order of ``np.r_[positive, negative]``)."""
    return np.r_[np.ones(len(positive), bool), np.zeros(len(negative), bool)]


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Mann-Whitney AUROC of positives against negatives, ties counted half."""
    return detection_metrics(_labels(positive, negative), np.r_[positive, negative], ("auroc",))["auroc"]


def average_precision(scores: np.ndarray, is_positive: np.ndarray) -> float:
    """Sum over thresholds of precision times the gain in recall (scikit-learn's definition)."""
    return detection_metrics(is_positive, scores, ("aupr_out",))["aupr_out"]


def fpr_at_tpr(positive: np.ndarray, negative: np.ndarray, tpr: float = 0.95) -> float:
    """False positive rate at the first threshold whose true positive count reaches ``tpr`` times the positives."""
    return detection_metrics(_labels(positive, negative), np.r_[positive, negative], ("fpr95",), tpr)["fpr95"]


def ood_metrics(inlier: np.ndarray, outlier: np.ndarray) -> tuple[dict[str, float], str]:
    """AUROC, AUPR-In, AUPR-Out and FPR@95TPR in both conventions of outlier vs inlier scores.

    Returns the metrics and an empty note, or all-NaN metrics and a note saying why.
    """
    inlier, outlier = np.asarray(inlier, dtype=np.float64), np.asarray(outlier, dtype=np.float64)
    both = np.concatenate([inlier, outlier])
    reason = "no in-distribution or no OoD examples" if len(inlier) == 0 or len(outlier) == 0 else unusable(both)
    if reason:
        return dict.fromkeys(OOD_METRICS, float("nan")), reason
    return detection_metrics(np.r_[np.zeros(len(inlier), bool), np.ones(len(outlier), bool)], both), ""


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

    The Pearson correlation of the rows' ranks, as one matrix product of the standardised ranks of the rows
    that vary (``spearmanr`` transposes them into a covariance several times slower, and answers one NaN for
    the whole matrix if any row is constant).
    """
    rows = np.asarray(rows, dtype=np.float64)
    varies = np.flatnonzero(np.ptp(rows, axis=1) > 0)  # NaN rows count as constant: their rho is NaN too
    matrix = np.full((len(rows), len(rows)), np.nan)
    ranks = rankdata(rows[varies], axis=1)
    ranks -= ranks.mean(axis=1, keepdims=True)
    ranks /= np.linalg.norm(ranks, axis=1, keepdims=True)
    matrix[np.ix_(varies, varies)] = np.clip(ranks @ ranks.T, -1.0, 1.0)
    matrix[varies, varies] = 1.0
    return matrix


def spearman_brown(rho: float, factor: float) -> float:
    """Reliability of an average of ``factor`` times as many runs as those giving correlation ``rho``."""
    return factor * rho / (1 + (factor - 1) * rho)


def runs_for(target: float, rho_single: float) -> float:
    """Runs to average for their mean to correlate ``target`` with another such mean (Spearman-Brown, inverted)."""
    if rho_single <= 0:
        return float("inf")
    return float(max(1.0, np.ceil(target * (1 - rho_single) / (rho_single * (1 - target)) - 1e-9)))
