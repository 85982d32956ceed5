"""The asymptotic intervals over examples: coverage of known values on simulated scores, for each metric and
design, and agreement with DeLong's variance and with the bootstrap.

Coverage is counted over ``REPLICATES`` simulated data sets of binormal scores (in-distribution N(0, 1), OoD
N(d, 1)), whose AUROC, AUPR-In, AUPR-Out and FPR@95 (both conventions) are known in closed form or by quadrature.
With 300 replicates the count's standard error at 95% is 1.3 points; the stated tolerance is 3.5 points (2.7
standard errors) around 95%, the seeds fixed in advance.
"""

import numpy as np
import pytest
from scipy import integrate, stats

from bench.influence import fisher_interval, hall_sheather, influences, normal_interval, standard_error
from bench.metrics import OOD_METRICS, detection_metrics

REPLICATES = 300
TOLERANCE = 0.035
SHIFT, N_IN, N_OUT = 1.2, 300, 200


def binormal_truth(shift: float, n_in: int, n_out: int) -> dict[str, float]:
    """The population values of the metrics at class sizes n_in, n_out (AP depends on the class ratio)."""
    out_share = n_out / (n_in + n_out)

    def precision_out(t: float) -> float:  # OoD flagged at or above t
        a, b = stats.norm.sf(t - shift), stats.norm.sf(t)
        return out_share * a / (out_share * a + (1 - out_share) * b)

    def precision_in(t: float) -> float:  # in-distribution flagged at or below t
        a, b = stats.norm.cdf(t), stats.norm.cdf(t - shift)
        return (1 - out_share) * a / ((1 - out_share) * a + out_share * b)

    return {"auroc": float(stats.norm.cdf(shift / np.sqrt(2))),
            "aupr_in": integrate.quad(lambda t: precision_in(t) * stats.norm.pdf(t), -12, 12)[0],
            "aupr_out": integrate.quad(lambda t: precision_out(t) * stats.norm.pdf(t - shift), -12, 12)[0],
            "fpr95": float(stats.norm.sf(shift + stats.norm.ppf(0.05))),
            "fpr95_id": float(stats.norm.cdf(stats.norm.ppf(0.95) - shift))}  # OoD below the inliers' 95% quantile


def stratified(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, units and the units' strata of a stratified design: every example its own unit, strata the classes."""
    labels = np.r_[np.zeros(n_in, bool), np.ones(n_out, bool)]
    return labels, np.arange(n_in + n_out), labels.astype(np.int64)


def coverage(draw, labels, units, strata, truth) -> dict[str, float]:
    rng = np.random.default_rng(2024)
    hits = dict.fromkeys(OOD_METRICS, 0)
    for _ in range(REPLICATES):
        for metric, (value, terms) in influences(labels, draw(rng)).items():
            low, high = normal_interval(value, standard_error(terms, units, strata))
            hits[metric] += low <= truth[metric] <= high
    return {metric: count / REPLICATES for metric, count in hits.items()}


def test_stratified_intervals_cover_the_known_values():
    labels, units, strata = stratified(N_IN, N_OUT)

    def draw(rng):
        return np.r_[rng.standard_normal(N_IN), SHIFT + rng.standard_normal(N_OUT)]

    found = coverage(draw, labels, units, strata, binormal_truth(SHIFT, N_IN, N_OUT))
    assert found == pytest.approx(dict.fromkeys(OOD_METRICS, 0.95), abs=TOLERANCE)


def test_paired_intervals_cover_the_known_values_of_correlated_copies():
    """Image i scores z_i clean and SHIFT + 0.6 z_i + 0.8 e_i corrupted: each class is N(., 1), the pair correlates
    0.6, and each image is one unit holding both. The metrics' population values are those of the marginals."""
    n = N_IN
    labels = np.r_[np.zeros(n, bool), np.ones(n, bool)]
    units, strata = np.r_[np.arange(n), np.arange(n)], np.zeros(n, np.int64)

    def draw(rng):
        clean = rng.standard_normal(n)
        return np.r_[clean, SHIFT + 0.6 * clean + 0.8 * rng.standard_normal(n)]

    found = coverage(draw, labels, units, strata, binormal_truth(SHIFT, n, n))
    assert found == pytest.approx(dict.fromkeys(OOD_METRICS, 0.95), abs=TOLERANCE)


def test_a_mean_over_splits_sharing_the_in_distribution_covers_the_mean_of_the_known_values():
    """Two OoD splits (shifts 0.8 and 1.6) against one in-distribution sample: the mean's terms add per
    in-distribution example, the two OoD samples are strata of their own."""
    shifts = (0.8, 1.6)
    truth = {metric: np.mean([binormal_truth(shift, N_IN, N_OUT)[metric] for shift in shifts]) for metric in OOD_METRICS}
    labels = np.r_[np.zeros(N_IN, bool), np.ones(N_OUT, bool)]
    units = np.r_[np.arange(N_IN), N_IN + np.arange(N_OUT), np.arange(N_IN), N_IN + N_OUT + np.arange(N_OUT)]
    strata = np.r_[np.zeros(N_IN), np.ones(N_OUT), np.full(N_OUT, 2)].astype(np.int64)
    rng = np.random.default_rng(7)
    hits = dict.fromkeys(OOD_METRICS, 0)
    for _ in range(REPLICATES):
        inlier = rng.standard_normal(N_IN)
        found = [influences(labels, np.r_[inlier, shift + rng.standard_normal(N_OUT)]) for shift in shifts]
        for metric in OOD_METRICS:
            value = np.mean([one[metric][0] for one in found])
            terms = np.concatenate([one[metric][1] for one in found]) / len(shifts)
            low, high = normal_interval(value, standard_error(terms, units, strata))
            hits[metric] += low <= truth[metric] <= high
    assert {m: h / REPLICATES for m, h in hits.items()} == pytest.approx(dict.fromkeys(OOD_METRICS, 0.95),
                                                                          abs=TOLERANCE)


def test_ignoring_the_shared_in_distribution_would_be_too_narrow():
    """The property the units exist for: with the in-distribution shared, the mean's standard error exceeds the one
    computed as if each split had its own in-distribution sample."""
    rng = np.random.default_rng(3)
    labels = np.r_[np.zeros(N_IN, bool), np.ones(N_OUT, bool)]
    inlier = rng.standard_normal(N_IN)
    found = [influences(labels, np.r_[inlier, 1.0 + rng.standard_normal(N_OUT)])["auroc"] for _ in range(2)]
    terms = np.concatenate([one[1] for one in found]) / 2
    shared = np.r_[np.arange(N_IN), N_IN + np.arange(N_OUT), np.arange(N_IN), N_IN + N_OUT + np.arange(N_OUT)]
    apart = np.arange(2 * (N_IN + N_OUT))
    strata = np.r_[np.zeros(N_IN), np.ones(N_OUT), np.full(N_OUT, 2)].astype(np.int64)
    strata_apart = np.r_[np.zeros(N_IN), np.ones(N_OUT), np.zeros(N_IN), np.full(N_OUT, 2)].astype(np.int64)
    assert standard_error(terms, shared, strata) > 1.1 * standard_error(terms, apart, strata_apart)


def test_auroc_variance_is_delongs_and_values_are_the_metrics():
    """Against DeLong et al.'s O(mn) placements: V10_i the share of negatives below positive i (ties half), V01_j
    the share of positives above negative j; the variance var(V10) / m + var(V01) / n."""
    rng = np.random.default_rng(0)
    labels, units, strata = stratified(150, 90)
    scores = np.round(np.r_[rng.standard_normal(150), 0.7 + rng.standard_normal(90)], 1)  # with ties
    pos, neg = scores[labels], scores[~labels]
    wins = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    found = influences(labels, scores)
    assert standard_error(found["auroc"][1], units, strata) ** 2 == pytest.approx(
        wins.mean(axis=1).var(ddof=1) / len(pos) + wins.mean(axis=0).var(ddof=1) / len(neg), rel=1e-10)
    assert {m: v for m, (v, _) in found.items()} == detection_metrics(labels, scores)


def test_standard_errors_match_the_spread_over_simulated_data_sets():
    """At 2,000 in-distribution and 1,000 OoD examples, the mean asymptotic standard error over 300 data sets is
    within 8% of the metric's standard deviation over them (itself known to about 4%). (For FPR@95, a quantile's
    function, the bootstrap's spread was 0.019 on one such data set against a spread of 0.0235 over them.)"""
    rng = np.random.default_rng(11)
    labels, units, strata = stratified(2000, 1000)
    values, errors = {m: [] for m in OOD_METRICS}, {m: [] for m in OOD_METRICS}
    for _ in range(REPLICATES):
        for metric, (value, terms) in influences(labels, np.r_[rng.standard_normal(2000),
                                                               1.0 + rng.standard_normal(1000)]).items():
            values[metric].append(value)
            errors[metric].append(standard_error(terms, units, strata))
    for metric in OOD_METRICS:
        assert np.mean(errors[metric]) == pytest.approx(np.std(values[metric], ddof=1), rel=0.08), metric


def test_ap_terms_predict_the_change_from_one_more_example():
    """The first-order term of an example is the change its addition makes, times the stratum size (up to the
    centring shared by its class): checked for AP on exact one-example additions."""
    rng = np.random.default_rng(5)
    n_in, n_out = 4000, 2000
    labels = np.r_[np.zeros(n_in, bool), np.ones(n_out, bool)]
    scores = np.r_[rng.standard_normal(n_in), 1.0 + rng.standard_normal(n_out)]
    value, terms = influences(labels, scores, ("aupr_out",))["aupr_out"]
    for new_label, where in ((True, slice(n_in, None)), (False, slice(0, n_in))):
        probes = np.quantile(scores[where], [0.1, 0.5, 0.9])
        changes, predicted = [], []
        for probe in probes:
            grown = detection_metrics(np.r_[labels, new_label], np.r_[scores, probe], ("aupr_out",))["aupr_out"]
            size = n_out + 1 if new_label else n_in + 1
            changes.append((grown - value) * size)  # the new example's influence, against the class's others
            nearest = np.argmin(np.abs(scores[where] - probe))
            predicted.append(terms[where][nearest] * (n_out if new_label else n_in))
        # differences between probes cancel the class's centring constant and the shift of the others
        np.testing.assert_allclose(np.diff(changes), np.diff(predicted), rtol=0.05, atol=2e-3)


def test_fisher_interval_covers_spearman_of_a_binormal_pair():
    """Spearman's population value for a bivariate normal of correlation r is (6 / pi) arcsin(r / 2)."""
    r, n = 0.5, 150
    truth = 6 / np.pi * np.arcsin(r / 2)
    rng = np.random.default_rng(9)
    hits = 0
    for _ in range(REPLICATES):
        x = rng.standard_normal(n)
        y = r * x + np.sqrt(1 - r**2) * rng.standard_normal(n)
        low, high = fisher_interval(stats.spearmanr(x, y).statistic, n)
        hits += low <= truth <= high
    assert hits / REPLICATES == pytest.approx(0.95, abs=TOLERANCE)


def test_degenerate_cases():
    assert np.isnan(fisher_interval(0.3, 3)).all() and np.isnan(fisher_interval(np.nan, 50)).all()
    assert fisher_interval(1.0, 50) == (1.0, 1.0)
    assert normal_interval(0.99, 0.1) == (pytest.approx(0.99 - 0.1 * stats.norm.ppf(0.975)), 1.0)  # clipped to the metric's range
    assert np.isnan(standard_error(np.ones(3), np.arange(3), np.array([0, 0, 1])))  # a stratum of one unit
    # Hall & Sheather's bandwidth shrinks as n^(-1/3): by 2 for 8 times the draws
    assert hall_sheather(1000) / hall_sheather(8000) == pytest.approx(2.0)
