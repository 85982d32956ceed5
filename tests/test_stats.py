"""Intervals and tests of bench.stats: exact against scikit-learn / scipy where a reference exists,
and calibrated (coverage, null p-values) on simulated data with known truth."""

import io

import numpy as np
import pandas as pd
import pytest
import scikit_posthocs
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score

from bench.metrics import fpr_at_tpr
from bench.stats import (adjust_pvalues, bootstrap_distribution, bootstrap_intervals, critical_difference,
                         critical_difference_figure, delong_test, delong_variance, friedman_ranking, nemenyi_q,
                         paired_bootstrap_distribution, percentile_interval, t_interval, weighted_metrics)


def binormal(rng, n_in, n_out, d):
    """In-distribution ~ N(0, 1), OoD ~ N(d, 1): true AUROC Phi(d / sqrt 2). Labels True = OoD."""
    labels = np.r_[np.zeros(n_in, bool), np.ones(n_out, bool)]
    return labels, rng.normal(size=n_in + n_out) + d * labels


# --- t-interval -------------------------------------------------------------------------------------

def test_t_interval_by_hand_and_degenerate_cases():
    values = [0.70, 0.72, 0.75, 0.71]
    half = stats.t.ppf(0.975, 3) * np.std(values, ddof=1) / 2
    assert t_interval(values) == pytest.approx((np.mean(values) - half, np.mean(values) + half), abs=1e-12)
    assert np.isnan(t_interval([0.7])).all()
    assert np.isnan(t_interval([0.7, np.nan, 0.8])).all()
    assert t_interval([0.5, 0.5, 0.5]) == (0.5, 0.5)


def test_t_interval_covers_the_mean_95_percent_of_the_time():
    """1000 runs of 5 normal "seeds": the binomial sd of the coverage is sqrt(.95 * .05 / 1000) = 0.007,
    so [0.93, 0.97] is about 3 sd either side."""
    rng = np.random.default_rng(0)
    covered = [low <= 0.8 <= high for low, high in (t_interval(rng.normal(0.8, 0.02, 5)) for _ in range(1000))]
    assert 0.93 <= np.mean(covered) <= 0.97


# --- Weighted metrics and the bootstrap -------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_weighted_metrics_equal_sklearn_on_repeated_examples(seed):
    """Count vectors (zeros included) on scores with ties within and across classes give exactly the
    metrics of the examples repeated that often."""
    rng = np.random.default_rng(seed)
    labels = rng.random(60) < 0.4
    scores = np.round(rng.normal(size=60) + labels, 1)  # about 40 distinct values: many ties
    counts = rng.integers(0, 4, size=(3, 60))
    got = weighted_metrics(labels, scores, counts)
    for row, count in enumerate(counts):
        y, s = np.repeat(labels, count), np.repeat(scores, count)
        assert got["auroc"][row] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        assert got["aupr_out"][row] == pytest.approx(average_precision_score(y, s), abs=1e-12)
        assert got["aupr_in"][row] == pytest.approx(average_precision_score(~y, -s), abs=1e-12)
        assert got["fpr95"][row] == pytest.approx(fpr_at_tpr(s[y], s[~y]), abs=1e-12)


def test_weighted_metrics_equal_sklearn_sample_weights():
    rng = np.random.default_rng(7)
    labels = rng.random(80) < 0.5
    scores, weights = np.round(rng.normal(size=80) + labels, 1), rng.random(80)
    got = weighted_metrics(labels, scores, weights, metrics=("auroc", "aupr_out"))
    assert got["auroc"][0] == pytest.approx(roc_auc_score(labels, scores, sample_weight=weights), abs=1e-12)
    assert got["aupr_out"][0] == pytest.approx(average_precision_score(labels, scores, sample_weight=weights),
                                               abs=1e-12)


def test_bootstrap_is_seeded_and_rejects_what_it_cannot_rank():
    labels, scores = binormal(np.random.default_rng(0), 300, 100, 1.0)
    first = bootstrap_distribution(labels, scores, resamples=200, seed=3)
    assert all(np.array_equal(first[m], bootstrap_distribution(labels, scores, resamples=200, seed=3)[m])
               for m in first)
    assert not np.array_equal(first["auroc"], bootstrap_distribution(labels, scores, ("auroc",), 200, seed=4)["auroc"])
    assert np.array_equal(first["auroc"], bootstrap_distribution(labels, scores, ("auroc",), 200, 3, labels)["auroc"])
    assert np.isnan(bootstrap_intervals(labels, np.ones_like(scores))["auroc"]).all()
    assert np.isnan(bootstrap_intervals(np.zeros_like(labels), scores)["aupr_in"]).all()
    with pytest.raises(ValueError, match="unknown metrics"):
        bootstrap_intervals(labels, scores, metrics=("accuracy",))


def test_bootstrap_with_strata_across_the_labels():
    """Two strata, each one OoD and one in-distribution example: a resample lacks a class with
    probability 2 * (1/4)^2 = 1/8 (NaN there, left out of the interval)."""
    labels, scores, strata = np.array([True, False, True, False]), np.arange(3.0, -1, -1), np.array([0, 0, 1, 1])
    values = bootstrap_distribution(labels, scores, ("auroc",), resamples=1000, strata=strata)["auroc"]
    assert 80 <= np.isnan(values).sum() <= 170  # binomial(1000, 1/8): 125 +- 10.5
    low, high = bootstrap_intervals(labels, scores, ("auroc",), resamples=1000, strata=strata)["auroc"]
    assert 0 <= low < high <= 1


def test_bootstrap_interval_covers_the_true_auroc_95_percent_of_the_time():
    """200 binormal data sets (d = 1, 150 per class): the binomial sd of the coverage is
    sqrt(.95 * .05 / 200) = 0.015, so [0.90, 0.99] is about 3 sd below and 2.6 above (the percentile
    bootstrap runs slightly narrow at this size)."""
    rng = np.random.default_rng(1)
    truth = stats.norm.cdf(1 / np.sqrt(2))
    covered = []
    for repetition in range(200):
        labels, scores = binormal(rng, 150, 150, 1.0)
        low, high = bootstrap_intervals(labels, scores, ("auroc",), resamples=1000, seed=repetition)["auroc"]
        covered.append(low <= truth <= high)
    assert 0.90 <= np.mean(covered) <= 0.99


def correlated_pairs(rng, n, d, correlation):
    """Clean scores ~ N(0, 1) and each one's corrupted copy's, correlated with it, ~ N(d, 1): the true AUROC
    (a corrupted image outscoring another clean one) is Phi(d / sqrt 2)."""
    clean = rng.normal(size=n)
    return clean, correlation * clean + np.sqrt(1 - correlation**2) * rng.normal(size=n) + d


def test_paired_bootstrap_resamples_images_with_their_corrupted_copies():
    """Each resample is the metrics of n drawn images, each counted with both its scores: redrawn by hand with the
    same generator, the metrics equal scikit-learn's on the repeated pairs."""
    rng = np.random.default_rng(5)
    clean, corrupted = correlated_pairs(rng, 40, 0.8, 0.6)
    values = paired_bootstrap_distribution(clean, corrupted, resamples=3, seed=11)
    drawn = np.random.default_rng(11).integers(0, 40, size=(3, 40))
    for row in range(3):
        y = np.r_[np.zeros(40, bool), np.ones(40, bool)]
        s = np.r_[clean[drawn[row]], corrupted[drawn[row]]]
        assert values["auroc"][row] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        assert values["aupr_out"][row] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    with pytest.raises(ValueError, match="cannot be paired"):
        paired_bootstrap_distribution(clean, corrupted[:-1])


def test_paired_bootstrap_covers_the_true_auroc_of_correlated_pairs_95_percent_of_the_time():
    """300 data sets of 200 images whose clean and corrupted scores correlate at 0.7 (the model-based scores of
    the quick run: Spearman 0.4-0.7): the paired interval covers the true AUROC 0.95 +- 0.04 of the time (3
    binomial sd of the coverage, 0.0126); resampling the two sides apart gives wider intervals, which cover
    nearly always (the audit found 0.98-1.00)."""
    rng = np.random.default_rng(6)
    truth = stats.norm.cdf(1 / np.sqrt(2))
    covered, widths = [], []
    labels = np.r_[np.zeros(200, bool), np.ones(200, bool)]
    for repetition in range(300):
        clean, corrupted = correlated_pairs(rng, 200, 1.0, 0.7)
        low, high = percentile_interval(paired_bootstrap_distribution(clean, corrupted, ("auroc",), 400,
                                                                      repetition)["auroc"])
        apart = bootstrap_intervals(labels, np.r_[clean, corrupted], ("auroc",), 400, repetition)["auroc"]
        covered.append(low <= truth <= high)
        widths.append((high - low, apart[1] - apart[0]))
    assert np.mean(covered) == pytest.approx(0.95, abs=0.04)
    paired, unpaired = np.mean(widths, axis=0)
    assert paired < 0.8 * unpaired


# --- DeLong -----------------------------------------------------------------------------------------

def test_delong_matches_the_pairwise_definition_with_ties():
    """Against the O(mn) placements of DeLong et al.: V10_i = share of negatives below positive i
    (ties half), V01_j = share of positives above negative j."""
    rng = np.random.default_rng(2)
    labels = rng.random(70) < 0.4
    scores = np.round(rng.normal(size=70) + labels, 1)
    pos, neg = scores[labels], scores[~labels]
    wins = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = wins.mean(axis=1), wins.mean(axis=0)
    result = delong_variance(labels, scores)
    assert result.auroc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert result.variance == pytest.approx(v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg), rel=1e-10)


def test_delong_variance_agrees_with_the_bootstrap():
    """n = 3000: the two estimate the same variance; 2000 resamples leave the bootstrap variance a
    relative sd of sqrt(2 / 2000) = 3%, so 15% is about 5 sd of room."""
    labels, scores = binormal(np.random.default_rng(3), 1500, 1500, 1.0)
    boot = bootstrap_distribution(labels, scores, ("auroc",), resamples=2000)["auroc"]
    assert delong_variance(labels, scores).variance == pytest.approx(boot.var(ddof=1), rel=0.15)


def test_delong_test_of_two_scorers():
    rng = np.random.default_rng(4)
    labels, latent = binormal(rng, 400, 400, 1.0)
    good, worse = latent + 0.3 * rng.normal(size=800), latent + 1.5 * rng.normal(size=800)
    result = delong_test(labels, good, worse)
    assert (result.auroc_a, result.auroc_b) == pytest.approx((roc_auc_score(labels, good),
                                                              roc_auc_score(labels, worse)), abs=1e-12)
    assert result.variance_a == pytest.approx(delong_variance(labels, good).variance, rel=1e-12)
    assert result.z > 0 and result.p < 1e-6
    swapped = delong_test(labels, worse, good)
    assert swapped.z == pytest.approx(-result.z) and swapped.p == pytest.approx(result.p)
    same = delong_test(labels, good, 2 * good + 1)  # the same ranking: no difference, no variance
    assert (same.z, same.p) == (0.0, 1.0)


def test_delong_p_values_are_uniform_under_the_null():
    """Two scorers, equally noisy views of one latent score, have the same AUROC: over 300 data sets
    the share of p < 0.05 has binomial sd 0.013, so [0.02, 0.09] is about 2.4 sd below and 3.2 above."""
    rng = np.random.default_rng(5)
    p = []
    for _ in range(300):
        labels, latent = binormal(rng, 200, 200, 1.0)
        p.append(delong_test(labels, latent + rng.normal(size=400), latent + rng.normal(size=400)).p)
    assert 0.02 <= np.mean(np.array(p) < 0.05) <= 0.09
    assert stats.kstest(p, "uniform").pvalue > 0.001


# --- Multiple comparisons and Welch -----------------------------------------------------------------

def test_holm_and_benjamini_hochberg_by_hand_skip_nan():
    p = [0.01, 0.04, np.nan, 0.03]
    # Holm over the 3 real tests: 0.01 * 3, then max(0.03 * 2, 0.03), then max(0.04 * 1, 0.06)
    np.testing.assert_allclose(adjust_pvalues(p, "holm"), [0.03, 0.06, np.nan, 0.06])
    # BH: 0.04 * 3/3, min(0.03 * 3/2, 0.04), 0.01 * 3/1
    np.testing.assert_allclose(adjust_pvalues(p, "bh"), [0.03, 0.04, np.nan, 0.04])
    np.testing.assert_allclose(adjust_pvalues(p, "bh")[[0, 1, 3]], stats.false_discovery_control([0.01, 0.04, 0.03]))
    assert np.isnan(adjust_pvalues([np.nan, np.nan])).all()
    with pytest.raises(ValueError, match="unknown method"):
        adjust_pvalues(p, "bonferroni")


# --- Friedman, Nemenyi, critical difference ---------------------------------------------------------

@pytest.mark.parametrize("k, q", [(2, 1.960), (3, 2.343), (4, 2.569), (5, 2.728), (6, 2.850), (7, 2.949),
                                  (8, 3.031), (9, 3.102), (10, 3.164)])
def test_nemenyi_q_matches_demsar_table(k, q):
    """Demšar (2006), Table 5(a), alpha 0.05, given to 3 decimals (k = 7 is 2.9483 there rounded up)."""
    assert nemenyi_q(k) == pytest.approx(q, abs=1e-3)


def scorer_table(rng, blocks=30):
    """Blocks x 5 scorers whose true quality rises from s0 to s4, plus noise."""
    return pd.DataFrame(rng.normal(size=(blocks, 5)) + np.linspace(0, 2, 5), columns=[f"s{i}" for i in range(5)])


def test_friedman_ranking_matches_scipy_and_scikit_posthocs():
    table = scorer_table(np.random.default_rng(6))
    table.iloc[[2, 7], [1, 3]] = np.nan
    ranking = friedman_ranking(table)
    complete = table.dropna()
    expected = stats.friedmanchisquare(*complete.to_numpy().T)
    assert (ranking.statistic, ranking.p) == pytest.approx((expected.statistic, expected.pvalue), rel=1e-12)
    assert (ranking.blocks, ranking.dropped_blocks) == (28, 2)
    pd.testing.assert_frame_equal(ranking.nemenyi, scikit_posthocs.posthoc_nemenyi_friedman(complete))
    assert ranking.critical_difference == pytest.approx(nemenyi_q(5) * np.sqrt(5 * 6 / (6 * 28)))
    assert ranking.critical_difference == critical_difference(5, 28)
    assert ranking.average_ranks.index[0] == "s4" and ranking.average_ranks.iloc[0] < 2
    assert ranking.average_ranks.sum() == pytest.approx(15)  # 1 + ... + 5
    lower = friedman_ranking(table, higher_is_better=False)
    assert lower.average_ranks.index[0] == "s0" and lower.statistic == pytest.approx(ranking.statistic)


def test_friedman_ranking_edge_cases():
    two = friedman_ranking(pd.DataFrame({"a": [0.9, 0.8, 0.7], "b": [0.5, 0.6, 0.4]}))
    assert np.isnan(two.statistic) and two.average_ranks.to_dict() == {"a": 1.0, "b": 2.0}
    with pytest.raises(ValueError, match="no block"):
        friedman_ranking(pd.DataFrame({"a": [np.nan], "b": [1.0], "c": [2.0]}))


def test_critical_difference_figure_draws_without_pyplot_state():
    import matplotlib.pyplot as plt

    ranking = friedman_ranking(scorer_table(np.random.default_rng(8)))
    open_before = plt.get_fignums()
    figure = critical_difference_figure(ranking)
    assert plt.get_fignums() == open_before
    texts = " ".join(text.get_text() for text in figure.axes[0].texts)
    assert all(name in texts for name in ranking.average_ranks.index) and "CD = " in texts
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG")
