"""Asymptotic 95% intervals over examples, at the cost of the metric's own sort.

To first order in the examples, each detection metric is its value plus one term per example, the
example's influence (von Mises expansion; the delta method), so its variance is the variance of a
sum of independent terms:

* AUROC: DeLong's structural components (DeLong, DeLong & Clarke-Pearson 1988): a positive's share of
  the negatives below it, a negative's share of the positives above it.
* Average precision (AUPR-In, AUPR-Out, the mislabel task's AP): AP is the mean over positives of the
  precision at their score, a smooth function of the two classes' survival functions there; a
  positive moves its own precision and, through the survival function, the precision at every score
  below it, a negative the precision at every positive score below it (derived in ``_ap_terms``).
* FPR@95: the false positive rate at the positives' 95% quantile. A negative counts in it or not
  (binomial); a positive moves the quantile, which moves the rate by the ROC curve's slope there, the
  ratio of the two classes' densities. The slope is the empirical ROC curve's secant over the true
  positive rates 0.95 ± h, h Hall & Sheather's bandwidth for a quantile's sparsity (Koenker 2005, 3.4.4).
  FPR@95 with in-distribution positive (``fpr95_id``) is the same with the classes and the order swapped.
* Spearman's correlation (the boundary task): Fisher's z with Bonett & Wright's (2000) variance
  (1 + r^2 / 2) / (n - 3), which is not a sum of terms and has its own function.

Examples are drawn in strata of fixed size (in-distribution and OoD, or clean and shuffled labels); a
paired design (an OoD split of corrupted copies of the test images) draws units that hold one example
of each class, whose terms add before their variance is taken. A mean over OoD splits that share the
in-distribution examples adds their terms per unit the same way, so the noise the splits share stays
in its interval. The variance is sum over strata of n_h times the sample variance of the units' terms.

Each interval is the normal one, value ± 1.96 standard errors, clipped to the metric's range. Its
coverage on simulated scores of known value is tested per metric and design (``tests/test_influence.py``);
the bootstrap over examples (``bench.stats``) stays available where no such form exists.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from bench.metrics import OOD_METRICS, group_metrics, groups, reached

Z95 = float(stats.norm.ppf(0.975))
TPR = 0.95  # of FPR@95


def _auroc_terms(neg: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per group, the term of one positive and of one negative there: V10 / P and V01 / N (DeLong)."""
    n_neg, n_pos = neg.sum(), pos.sum()
    below_neg = np.cumsum(neg) - neg  # negatives strictly below each group
    above_pos = n_pos - np.cumsum(pos)  # positives strictly above
    return (below_neg + 0.5 * neg) / n_neg / n_pos, (above_pos + 0.5 * pos) / n_pos / n_neg


def _ap_terms(neg: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per group (ascending score), the term of one positive and of one negative in average precision for finding
    the positives by descending score.

    AP = (1/P) sum over positives i of prec(s_i), prec(s) = A(s) / (A(s) + B(s)), A and B the positives and
    negatives scoring at or above s. As a function of the fractions a = A/P, b = B/N at fixed class sizes,
    d prec / d a = P B / (A + B)^2 and d prec / d b = -N A / (A + B)^2. A positive at group j adds prec_j
    and raises a at every group g <= j: sum_{g<=j} (pos_g / P) P B_g / (A_g + B_g)^2; a negative at j raises
    b there: -sum_{g<=j} (pos_g / P) N A_g / (A_g + B_g)^2. Divided by P and N, the sizes of their strata.
    """
    n_neg, n_pos = neg.sum(), pos.sum()
    above_pos = n_pos - np.cumsum(pos) + pos  # A: at or above each group
    above_neg = n_neg - np.cumsum(neg) + neg  # B
    flagged = above_pos + above_neg
    precision = above_pos / flagged
    through_pos = np.cumsum(pos * above_neg / flagged**2)
    through_neg = np.cumsum(pos * above_pos / flagged**2)
    return (precision + through_pos) / n_pos, -through_neg / n_pos


def hall_sheather(n: int, quantile: float = TPR, level: float = 0.95) -> float:
    """Hall & Sheather's (1988) bandwidth, in probability, for the sparsity of the ``quantile`` of n draws."""
    z, x = stats.norm.ppf((1 + level) / 2), stats.norm.ppf(quantile)
    return float(n ** (-1 / 3) * z ** (2 / 3) * (1.5 * stats.norm.pdf(x) ** 2 / (2 * x**2 + 1)) ** (1 / 3))


def _fpr_terms(neg: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per group, the term of one positive and of one negative in FPR@95 (module docstring)."""
    n_neg, n_pos = neg.sum(), pos.sum()
    pos_from, neg_from = n_pos - np.cumsum(pos) + pos, n_neg - np.cumsum(neg) + neg
    threshold = reached(pos_from, TPR * n_pos)[0]
    band = hall_sheather(int(n_pos))
    low, high = (reached(pos_from, min(rate, 1.0) * n_pos)[0] for rate in (max(TPR - band, 0.0), TPR + band))
    rise = (pos_from[high] - pos_from[low]) / n_pos
    slope = (neg_from[high] - neg_from[low]) / n_neg / rise if rise else 0.0
    flags = (np.arange(len(neg)) >= threshold).astype(np.float64)  # an example at or above the threshold
    return -slope * flags / n_pos, flags / n_neg


SWAPPED = {"aupr_in": _ap_terms, "fpr95_id": _fpr_terms}  # metrics of the in-distribution examples as positives


def _terms(metric: str, neg: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if metric == "auroc":
        return _auroc_terms(neg, pos)
    if metric == "aupr_out":
        return _ap_terms(neg, pos)
    if metric in SWAPPED:  # the in-distribution found by ascending score: the classes and the order swapped
        negative_terms, positive_terms = SWAPPED[metric](pos[::-1], neg[::-1])
        return positive_terms[::-1], negative_terms[::-1]
    return _fpr_terms(neg, pos)


def influences(labels: np.ndarray, scores: np.ndarray, metrics: Sequence[str] = OOD_METRICS
               ) -> dict[str, tuple[float, np.ndarray]]:
    """Each metric's value and each example's term (the value's first-order change from drawing that example,
    centred within its class), for finding the positives of ``labels`` by ``scores`` (higher = more anomalous).

    The scores must be usable (``bench.metrics.unusable``) and both classes present.
    """
    labels, scores = np.asarray(labels, dtype=bool).ravel(), np.asarray(scores, dtype=np.float64).ravel()
    group, neg, pos = groups(labels, scores)
    values = group_metrics(neg, pos, metrics)
    found = {}
    for metric in metrics:
        positive_terms, negative_terms = _terms(metric, neg, pos)
        terms = np.where(labels, positive_terms[group], negative_terms[group])
        for side in (labels, ~labels):
            terms[side] -= terms[side].mean()
        found[metric] = (float(values[metric][0]), terms)
    return found


def standard_error(terms: np.ndarray, units: np.ndarray, strata: np.ndarray) -> float:
    """The standard error of a sum of per-example ``terms`` when the examples come in independent units drawn in
    strata of fixed size: ``units`` gives each example's unit (an integer in [0, U); the examples of one unit are
    drawn together and their terms add), ``strata`` each unit's stratum (U integers). sqrt(sum_h n_h var_h), var_h
    the sample variance of the units' summed terms in stratum h; NaN if a stratum has fewer than 2 units."""
    strata = np.asarray(strata)
    totals = np.bincount(units, weights=np.asarray(terms, dtype=np.float64), minlength=len(strata))
    variance = 0.0
    for h in np.unique(strata):
        members = totals[strata == h]
        if len(members) < 2:
            return float("nan")
        variance += len(members) * members.var(ddof=1)
    return float(np.sqrt(variance))


def normal_interval(value: float, error: float, low: float = 0.0, high: float = 1.0) -> tuple[float, float]:
    """value ± 1.96 standard errors, clipped to the metric's range [low, high]."""
    return float(np.clip(value - Z95 * error, low, high)), float(np.clip(value + Z95 * error, low, high))


def fisher_interval(rho: float, n: int) -> tuple[float, float]:
    """95% interval of a Spearman correlation of n pairs: Fisher's z, Bonett & Wright's variance
    (1 + rho^2 / 2) / (n - 3); (nan, nan) for n < 4 or rho NaN, the point itself for |rho| = 1."""
    if n < 4 or not np.isfinite(rho):
        return float("nan"), float("nan")
    if abs(rho) >= 1:
        return float(rho), float(rho)
    half = Z95 * np.sqrt((1 + rho**2 / 2) / (n - 3))
    return float(np.tanh(np.arctanh(rho) - half)), float(np.tanh(np.arctanh(rho) + half))
