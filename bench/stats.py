"""Uncertainty and significance for the leaderboard's comparisons.

Two sources of noise are handled: the seeds (t-intervals; paired or Welch t-tests of two runs'
per-seed values, with the drop they can detect) and the examples of one seed (a stratified
bootstrap of the detection metrics, DeLong's test for two AUROCs on the same examples). Many
comparisons at once get Holm or Benjamini-Hochberg adjusted p-values; scorers over many (dataset, split, seed) blocks get Friedman's test, the
Nemenyi post-hoc test and a critical-difference diagram (Demšar 2006).

Labels and scores follow ``bench.metrics``: the OoD (or mislabeled) class is positive and scores are
oriented higher = more anomalous.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats

from bench.influence import influences
from bench.metrics import OOD_METRICS, group_metrics, unusable

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RESAMPLES = 1000  # the bootstrap's default, and the config's: `bootstrap_resamples`
_CHUNK_ELEMENTS = 1 << 20  # draws held at once in the bootstrap (8 MiB per float64 array)


def t_interval(values: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean over seeds (n - 1 degrees of freedom).

    ``(nan, nan)`` for fewer than 2 values or any non-finite one: a failed seed makes the mean unknown,
    not the interval of the others. Equal values give the degenerate interval (v, v).
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size < 2 or not np.isfinite(values).all():
        return float("nan"), float("nan")
    if np.ptp(values) == 0:  # scipy would answer NaN for a zero scale
        return float(values[0]), float(values[0])
    half_width = stats.t.isf((1 - level) / 2, values.size - 1) * stable_std(values, ddof=1) / np.sqrt(values.size)
    return float(values.mean() - half_width), float(values.mean() + half_width)


# --- Bootstrap over examples -------------------------------------------------------------------------
#
# Written here rather than taken from scipy.stats.bootstrap or sklearn.utils.resample: those evaluate
# the metric once per resample on copied data (a sort each time), which is too slow for every
# (scorer, split) of a run. Here the scores are sorted once into groups of equal score; a resample
# is then only how often each (group, class) cell was drawn, and every metric is a cumulative sum
# over the groups, vectorised over a block of resamples.


def _cells(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, int]:
    """Each example's cell, label * g + (rank of its distinct score), and g, the number of distinct scores."""
    distinct, group = np.unique(scores, return_inverse=True)
    return labels * len(distinct) + group, len(distinct)


def _cell_weights(cells: np.ndarray, groups: int, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-group weights of negatives and positives (each resamples x groups, ascending score) from cell
    ids (resamples x draws), each draw counted once or with its ``weights``."""
    rows = cells.shape[0]
    flat = (cells + (2 * groups * np.arange(rows))[:, None]).ravel()
    totals = np.bincount(flat, weights=None if weights is None else weights.ravel(), minlength=2 * groups * rows)
    totals = totals.reshape(rows, 2, groups).astype(np.float64, copy=False)
    return totals[:, 0], totals[:, 1]


def _checked(labels, scores, metrics) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], str]:
    """Labels and scores as flat arrays, the metric names as a tuple, and why they cannot be ranked (or "")."""
    labels, scores = np.asarray(labels, dtype=bool).ravel(), np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"{labels.size} labels for {scores.size} scores")
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    if unknown := set(metrics) - set(OOD_METRICS):
        raise ValueError(f"unknown metrics {sorted(unknown)}; known: {', '.join(OOD_METRICS)}")
    reason = "no positives or no negatives" if labels.all() or not labels.any() else unusable(scores)
    return labels, scores, metrics, reason


def weighted_metrics(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray,
                     metrics: Sequence[str] = OOD_METRICS) -> dict[str, np.ndarray]:
    """The metrics with example i counted ``weights[..., i]`` times, for each row of ``weights``.

    Integer weights give exactly the metrics of ``bench.metrics`` on the examples repeated that often;
    it is what one bootstrap resample is. NaN for unusable scores (as ``ood_metrics``) and for rows
    with no weight on one class.
    """
    labels, scores, metrics, reason = _checked(labels, scores, metrics)
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if reason:
        return {name: np.full(len(weights), np.nan) for name in metrics}
    cells, groups = _cells(labels, scores)
    return group_metrics(*_cell_weights(np.broadcast_to(cells, weights.shape), groups, weights), metrics)


def bootstrap_distribution(labels: np.ndarray, scores: np.ndarray, metrics: Sequence[str] = OOD_METRICS,
                           resamples: int = RESAMPLES, seed: int = 0,
                           strata: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Each metric on ``resamples`` stratified bootstrap resamples of the examples.

    Every stratum (by default the label: in-distribution vs OoD, or clean vs noisy) is resampled with
    replacement to its own size, so each resample keeps the class balance of the data. All NaN for
    unusable scores; a resample lacking a class (possible only with ``strata`` that cut across the
    labels) gives NaN.
    """
    labels, scores, metrics, reason = _checked(labels, scores, metrics)
    if reason:
        return {name: np.full(resamples, np.nan) for name in metrics}
    cells, groups = _cells(labels, scores)
    strata = labels if strata is None else np.asarray(strata).ravel()
    if strata.shape != labels.shape:
        raise ValueError(f"{strata.size} strata for {labels.size} examples")
    _, stratum = np.unique(strata, return_inverse=True)
    members = [cells[stratum == s] for s in range(stratum.max() + 1)]
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // len(cells))
    parts: dict[str, list[np.ndarray]] = {name: [] for name in metrics}
    for start in range(0, resamples, chunk):
        rows = min(chunk, resamples - start)
        drawn = np.concatenate([group[rng.integers(0, len(group), size=(rows, len(group)))] for group in members],
                               axis=1)
        for name, values in group_metrics(*_cell_weights(drawn, groups), metrics).items():
            parts[name].append(values)
    return {name: np.concatenate(values) for name, values in parts.items()}


def paired_bootstrap_distribution(inlier: np.ndarray, outlier: np.ndarray, metrics: Sequence[str] = OOD_METRICS,
                                  resamples: int = RESAMPLES, seed: int = 0) -> dict[str, np.ndarray]:
    """Each metric on ``resamples`` bootstrap resamples of pairs: ``outlier[i]`` scores a corrupted copy of the
    image ``inlier[i]`` scores, so a resample draws n images with replacement and takes both scores of each.

    Resampling the two sides apart (``bootstrap_distribution``) would treat a score and its corrupted copy's as
    independent; a score correlates with its copy's, and the interval would be too wide. All NaN for unusable
    scores.
    """
    inlier, outlier = (np.asarray(side, dtype=np.float64).ravel() for side in (inlier, outlier))
    if inlier.shape != outlier.shape:
        raise ValueError(f"{inlier.size} clean scores and {outlier.size} corrupted ones cannot be paired")
    n = inlier.size
    labels, scores, metrics, reason = _checked(np.r_[np.zeros(n, bool), np.ones(n, bool)], np.r_[inlier, outlier],
                                               metrics)
    if reason:
        return {name: np.full(resamples, np.nan) for name in metrics}
    cells, groups = _cells(labels, scores)
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // (2 * n))
    parts: dict[str, list[np.ndarray]] = {name: [] for name in metrics}
    for start in range(0, resamples, chunk):
        rows = min(chunk, resamples - start)
        drawn = rng.integers(0, n, size=(rows, n))  # images; each brings its clean and its corrupted score
        for name, values in group_metrics(*_cell_weights(np.hstack([cells[drawn], cells[n + drawn]]), groups),
                                           metrics).items():
            parts[name].append(values)
    return {name: np.concatenate(values) for name, values in parts.items()}


def bootstrap_intervals(labels: np.ndarray, scores: np.ndarray, metrics: Sequence[str] = OOD_METRICS,
                        resamples: int = RESAMPLES, seed: int = 0, level: float = 0.95,
                        strata: np.ndarray | None = None) -> dict[str, tuple[float, float]]:
    """Percentile interval at ``level`` of each metric over a stratified bootstrap of the examples
    (``bootstrap_distribution``); resamples where a metric is undefined are left out, (nan, nan) if all are."""
    distribution = bootstrap_distribution(labels, scores, metrics, resamples, seed, strata)
    return {name: percentile_interval(values, level) for name, values in distribution.items()}


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` interval of bootstrap values; undefined resamples (NaN) are left out."""
    values = values[np.isfinite(values)]
    if not values.size:
        return float("nan"), float("nan")
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def spearman_along(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman correlation of ``x`` and ``y`` along ``axis`` (ties get average ranks), vectorised for ``scipy.stats.bootstrap``."""
    x, y = stats.rankdata(x, axis=axis), stats.rankdata(y, axis=axis)
    x, y = x - x.mean(axis=axis, keepdims=True), y - y.mean(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x * y).sum(axis=axis) / np.sqrt((x * x).sum(axis=axis) * (y * y).sum(axis=axis))


def spearman_bootstrap_interval(x: np.ndarray, y: np.ndarray, resamples: int = RESAMPLES, seed: int = 0,
                                level: float = 0.95) -> tuple[float, float]:
    """Percentile interval at ``level`` of Spearman's correlation of ``x`` and ``y`` over a bootstrap of the
    (x, y) pairs: a correlation is no sum over cells of a score, so the engine above does not serve it and
    scipy's bootstrap draws the pairs."""
    result = stats.bootstrap((x, y), spearman_along, paired=True, vectorized=True, n_resamples=resamples,
                             method="percentile", confidence_level=level, random_state=seed)
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


# --- DeLong's test ----------------------------------------------------------------------------------
#
# Written here: neither scipy, statsmodels nor scikit-learn has DeLong's test. The structural
# components are the AUROC's per-example terms of ``bench.influence``, from one sort.


@dataclass(frozen=True)
class DeLongAUROC:
    """One AUROC and DeLong's estimate of its variance over resampled examples."""

    auroc: float
    variance: float


@dataclass(frozen=True)
class DeLongComparison:
    """Two AUROCs on the same examples, their DeLong covariance, and the z test of their difference (a - b)."""

    auroc_a: float
    auroc_b: float
    variance_a: float
    variance_b: float
    covariance: float
    z: float
    p: float


def _delong(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROCs (one per row of ``scores``) and their DeLong covariance matrix; NaN for under 2 of a class.

    The covariance of two rows is, per class, the class size times the covariance of their terms: V10 / m for
    a positive (the share of negatives it outscores, over the m positives), V01 / n for a negative."""
    labels = np.asarray(labels, dtype=bool).ravel()
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    m, n = labels.sum(), (~labels).sum()
    if m < 2 or n < 2 or not np.isfinite(scores).all():
        return np.full(len(scores), np.nan), np.full((len(scores), len(scores)), np.nan)
    found = [influences(labels, row, ("auroc",))["auroc"] for row in scores]
    terms = np.stack([row_terms for _, row_terms in found])
    covariance = m * np.atleast_2d(np.cov(terms[:, labels])) + n * np.atleast_2d(np.cov(terms[:, ~labels]))
    return np.array([value for value, _ in found]), covariance


def delong_variance(labels: np.ndarray, scores: np.ndarray) -> DeLongAUROC:
    """The AUROC of ``scores`` against ``labels`` (positive = OoD) and DeLong's variance of it."""
    auc, covariance = _delong(labels, scores)
    return DeLongAUROC(float(auc[0]), float(covariance[0, 0]))


def delong_test(labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray) -> DeLongComparison:
    """DeLong, DeLong & Clarke-Pearson (1988): are two correlated AUROCs on the same examples equal?

    z = (AUROC_a - AUROC_b) / sd of the difference, p two-sided from the normal. When the difference
    has zero variance (e.g. the same ranking twice) z is 0 and p 1 for equal AUROCs, else z is
    infinite and p 0.
    """
    auc, cov = _delong(labels, np.vstack([np.ravel(scores_a), np.ravel(scores_b)]))
    difference, variance = auc[0] - auc[1], cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    if np.isnan(variance) or variance > 0:
        z = difference / np.sqrt(variance)
    else:  # the difference does not vary (e.g. the same ranking twice)
        z = 0.0 if difference == 0 else np.copysign(np.inf, difference)
    p = 2 * stats.norm.sf(abs(z))
    return DeLongComparison(float(auc[0]), float(auc[1]), float(cov[0, 0]), float(cov[1, 1]), float(cov[0, 1]),
                            float(z), float(p))


# --- Multiple comparisons and seeds -----------------------------------------------------------------


def adjust_pvalues(pvalues: Sequence[float] | np.ndarray, method: Literal["holm", "bh"] = "holm") -> np.ndarray:
    """Holm (family-wise error) or Benjamini-Hochberg (false discovery rate) adjusted p-values.

    NaN p-values (comparisons that could not be made) stay NaN and do not count among the tests. Holm is
    written here (sorted p times the tests left, made monotone, at most 1), BH is scipy's: statsmodels'
    ``multipletests`` has both but runs a full garbage collection on every call (0.2 s each here), which
    the gate and its simulations call thousands of times.
    """
    if method not in ("holm", "bh"):
        raise ValueError(f"unknown method {method!r}; known: holm, bh")
    pvalues = np.asarray(pvalues, dtype=np.float64)
    adjusted, tested = np.full(pvalues.shape, np.nan), ~np.isnan(pvalues)
    if not tested.any():
        return adjusted
    if method == "bh":
        adjusted[tested] = stats.false_discovery_control(pvalues[tested])
        return adjusted
    order = np.argsort(pvalues[tested], kind="stable")
    scaled = pvalues[tested][order] * np.arange(tested.sum(), 0, -1)
    holm = np.empty_like(scaled)
    holm[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    adjusted[tested] = holm
    return adjusted


def stable_std(values: np.ndarray, ddof: int = 0) -> float:
    """The standard deviation of finite ``values``, computed on values scaled to at most 1 in size, so that it
    neither underflows (p-values of 1e-200: their squares are below the smallest float) nor overflows."""
    values = np.asarray(values, dtype=np.float64).ravel()
    scale = np.max(np.abs(values)) if values.size else 0.0
    if scale == 0 or not np.isfinite(scale):
        return float(values.std(ddof=ddof)) if values.size > ddof else float("nan")
    return float(scale * (values / scale).std(ddof=ddof))


# --- The gate: is one row of a leaderboard worse in B than in A? -------------------------------------
#
# Each row is a difference B - A with a standard error and degrees of freedom, from one of three tests:
# a paired t-test on the per-seed differences (both files have the same seeds: the seed's share of the
# noise cancels), Welch's t-test on the two sets of per-seed values (other seeds), or a normal test from the
# two 95% intervals (where the seeds give no noise and the examples do: the bootstrap's interval). The gate
# asks whether B is *worse*, so its p is one-sided; the minimum detectable drop is the drop that test finds
# with the given power at the given level, from the noncentral t (or normal) distribution.

PAIRED, WELCH, INTERVALS = "paired t", "Welch t", "intervals"


@dataclass(frozen=True)
class Difference:
    """B - A of one row and what its noise is made of: ``spreads`` are the standard deviations over seeds of
    the per-seed differences (paired; the second is 0) or of A's and B's values (Welch), or the standard
    errors of A and B (intervals, which do not shrink with seeds); ``seeds`` the seeds behind each side."""

    delta: float
    test: str
    spreads: tuple[float, float]
    seeds: tuple[int, int]

    def standard_error(self, seeds: int | None = None) -> float:
        """The standard error of ``delta``, or what it would be with ``seeds`` seeds in each file."""
        n_a, n_b = (seeds, seeds) if seeds else self.seeds
        if self.test == INTERVALS:
            return float(np.hypot(*self.spreads))
        if self.test == PAIRED:
            return self.spreads[0] / np.sqrt(n_a)
        return float(np.hypot(self.spreads[0] / np.sqrt(n_a), self.spreads[1] / np.sqrt(n_b)))

    def degrees_of_freedom(self, seeds: int | None = None) -> float:
        """The t distribution's degrees of freedom (Welch-Satterthwaite for Welch; inf: the normal)."""
        n_a, n_b = (seeds, seeds) if seeds else self.seeds
        if self.test == INTERVALS:
            return np.inf
        if self.test == PAIRED:
            return n_a - 1.0
        scale = max(self.spreads)
        if scale == 0:
            return n_a + n_b - 2.0
        v_a, v_b = (self.spreads[0] / scale) ** 2 / n_a, (self.spreads[1] / scale) ** 2 / n_b
        return (v_a + v_b) ** 2 / (v_a**2 / (n_a - 1) + v_b**2 / (n_b - 1))

    def p(self) -> float:
        """Two-sided p that A and B measure the same value."""
        return min(1.0, 2 * self._tail(-abs(self.delta)))

    def p_worse(self, better: int) -> float:
        """One-sided p that B is worse than A; ``better`` is +1 where higher is better, -1 where lower is."""
        return self._tail(better * self.delta)

    def _tail(self, gain: float) -> float:
        """P(a difference at most ``gain`` in the better direction) under no change: the test's lower tail."""
        if np.isnan(gain):
            return float("nan")
        error = self.standard_error()
        if error == 0 or not np.isfinite(error):  # no noise at all: a difference of 0 is certain, any other impossible
            return float(gain >= 0)
        return float(stats.t.cdf(gain / error, self.degrees_of_freedom()))

    def detectable_drop(self, level: float, power: float = 0.8, seeds: int | None = None) -> float:
        """The smallest drop the one-sided test at ``level`` finds with probability ``power`` (with ``seeds``
        seeds in each file, if given, the same noise per seed)."""
        return float(_noncentrality(self.degrees_of_freedom(seeds), level, power) * self.standard_error(seeds))


_QUANTILES, _WEIGHTS = np.polynomial.legendre.leggauss(256)  # Gauss-Legendre nodes on [-1, 1], for ``_noncentrality``


@functools.lru_cache(maxsize=4096)
def _noncentrality(df: float, level: float, power: float) -> float:
    """The shift, in standard errors, at which a one-sided t (or normal) test at ``level`` rejects with
    probability ``power``.

    The t test rejects when (Z + shift) / S > critical, S the estimated over the true standard error
    (chi(df) / sqrt(df)), so its power is the mean over S of P(Z > critical S - shift): integrated here by
    Gauss-Legendre quadrature over the quantiles of S (within 2e-4 of the exact value even at 1 degree of
    freedom and a level of 1e-6; scipy's ``nct.sf`` does not converge at the critical values of 2 or 3 seeds
    and small levels, and its quadrature-free series is what fails).
    """
    if not np.isfinite(df):
        return float(stats.norm.isf(level) + stats.norm.ppf(power))
    critical = stats.t.isf(level, df)
    spread = stats.chi.ppf((_QUANTILES + 1) / 2, df) / np.sqrt(df)

    def rejected(shift: float) -> float:
        return 0.5 * _WEIGHTS @ stats.norm.sf(critical * spread - shift)

    return float(optimize.brentq(lambda shift: rejected(shift) - power, 0.0, 10 * critical + 10, xtol=1e-10))


def _finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).ravel()
    return values[np.isfinite(values)]


def paired_difference(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> Difference | None:
    """The mean per-seed difference B - A of values measured on the same seeds (in the same order); None for
    fewer than 2 seeds where both are finite (a failed seed is left out with its pair)."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"{a.size} seeds in A, {b.size} in B: a paired test needs the same seeds")
    kept = np.isfinite(a) & np.isfinite(b)
    if kept.sum() < 2:
        return None
    differences = b[kept] - a[kept]
    return Difference(float(differences.mean()), PAIRED, (stable_std(differences, ddof=1), 0.0),
                      (int(kept.sum()),) * 2)


def welch_difference(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> Difference | None:
    """The difference of the means over seeds, B - A, of two sets of seeds; None where either side keeps fewer
    than 2 finite values."""
    a, b = _finite(a), _finite(b)
    if a.size < 2 or b.size < 2:
        return None
    return Difference(float(b.mean() - a.mean()), WELCH, (stable_std(a, ddof=1), stable_std(b, ddof=1)),
                      (a.size, b.size))


def interval_difference(delta: float, error_a: float, error_b: float) -> Difference:
    """B - A where each side's noise is a standard error (from its 95% interval), not seeds."""
    return Difference(float(delta), INTERVALS, (float(error_a), float(error_b)), (1, 1))


# --- Ranking scorers over many blocks ---------------------------------------------------------------


@dataclass(frozen=True)
class FriedmanRanking:
    """Scorers ranked within each block (rank 1 = best), Friedman's test and the Nemenyi post-hoc test."""

    average_ranks: pd.Series  # by scorer, best first
    statistic: float  # Friedman's chi-square (tie-corrected); NaN for under 3 scorers
    p: float
    nemenyi: pd.DataFrame  # pairwise p-values, scorers x scorers
    critical_difference: float  # average ranks further apart than this differ at ``alpha`` (Nemenyi)
    alpha: float
    blocks: int  # blocks used
    dropped_blocks: int  # blocks left out because some scorer had NaN there


def nemenyi_q(k: int, alpha: float = 0.05) -> float:
    """Critical value q_alpha of the Nemenyi test for k scorers: the studentized range quantile over sqrt 2."""
    return float(stats.studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2))


def critical_difference(k: int, blocks: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference q_alpha * sqrt(k (k + 1) / (6 N)) of average ranks (Demšar 2006)."""
    return nemenyi_q(k, alpha) * float(np.sqrt(k * (k + 1) / (6 * blocks)))


def friedman_ranking(table: pd.DataFrame, higher_is_better: bool = True, alpha: float = 0.05) -> FriedmanRanking:
    """Rank the scorers (columns) within each block (row, e.g. a (dataset, split, seed)) and test them.

    Blocks with a NaN for any scorer are dropped (counted in ``dropped_blocks``): Friedman's test
    needs every scorer in every block. Ties share the average rank.
    """
    import scikit_posthocs

    if not table.columns.is_unique:
        raise ValueError("scorer names (columns) must be unique")
    complete = table.notna().all(axis=1)
    values = table[complete].astype(np.float64)
    if len(values) == 0:
        raise ValueError(f"no block has a value for all {table.shape[1]} scorers")
    k, blocks = values.shape[1], len(values)
    ranks = stats.rankdata(-values.to_numpy() if higher_is_better else values.to_numpy(), axis=1)
    average = pd.Series(ranks.mean(axis=0), index=values.columns, name="average rank").sort_values(kind="stable")
    statistic = p = float("nan")
    if k >= 3:  # scipy's test needs 3 groups; all-tied blocks give NaN (0/0), not a warning
        with np.errstate(invalid="ignore", divide="ignore"):
            result = stats.friedmanchisquare(*values.to_numpy().T)
        statistic, p = float(result.statistic), float(result.pvalue)
    nemenyi = scikit_posthocs.posthoc_nemenyi_friedman(values)
    return FriedmanRanking(average, statistic, p, nemenyi, critical_difference(k, blocks, alpha), alpha, blocks,
                           int((~complete).sum()))


def critical_difference_figure(ranking: FriedmanRanking) -> Figure:
    """Demšar's critical-difference diagram: scorers on an axis of average rank (best left), bars joining
    those the Nemenyi test does not tell apart at ``ranking.alpha``, and the critical difference drawn.

    A bare ``Figure`` (no pyplot, so no global state and any backend); save it with ``savefig``.
    """
    import scikit_posthocs
    from matplotlib.figure import Figure

    k = len(ranking.average_ranks)
    figure = Figure(figsize=(8, 0.3 * k + 1.5))
    axes = figure.add_subplot()
    scikit_posthocs.critical_difference_diagram(ranking.average_ranks, ranking.nemenyi, ax=axes, alpha=ranking.alpha,
                                                label_fmt_left="{label} ({rank:.2f})",
                                                label_fmt_right="({rank:.2f}) {label}")
    axes.set_xlim(1, k)
    axes.set_xticks(range(1, k + 1))
    # the CD bar is drawn here, above the rank labels: scikit-posthocs puts it where they overlap it
    axes.plot([1, 1 + ranking.critical_difference], [1.6, 1.6], color="k", linewidth=2, clip_on=False)
    axes.text(1, 1.9, f"CD = {ranking.critical_difference:.2f} (Nemenyi, alpha {ranking.alpha:g})", fontsize=8)
    axes.set_title(f"average rank over {ranking.blocks} blocks (1 = best); Friedman p = {ranking.p:.2g}",
                   pad=40, fontsize=9)
    return figure
