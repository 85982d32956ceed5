"""The detection metrics against scikit-learn, the oracle, including ties and degenerate input."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from bench.metrics import auroc, ood_metrics


def sklearn_metrics(inlier, outlier):
    is_ood = np.r_[np.zeros(len(inlier)), np.ones(len(outlier))]
    scores = np.r_[inlier, outlier]
    fpr, tpr, _ = roc_curve(is_ood, scores, drop_intermediate=False)
    return {
        "auroc": roc_auc_score(is_ood, scores),
        "aupr_out": average_precision_score(is_ood, scores),
        "aupr_in": average_precision_score(1 - is_ood, -scores),
        "fpr95": fpr[np.argmax(tpr >= 0.95)],
    }


@pytest.mark.parametrize("case", range(200))
def test_metrics_equal_scikit_learn(case):
    rng = np.random.default_rng(case)
    n_in, n_out = rng.integers(2, 80, size=2)
    if case % 2:  # few distinct values: many ties across and within the classes
        inlier, outlier = rng.integers(0, 6, n_in).astype(float), rng.integers(1, 7, n_out).astype(float)
    else:
        inlier, outlier = rng.normal(size=n_in), rng.normal(0.7, size=n_out)
    ours, note = ood_metrics(inlier, outlier)
    assert note == ""
    expected = sklearn_metrics(inlier, outlier)
    for metric, value in expected.items():
        assert ours[metric] == pytest.approx(value, abs=1e-12), metric


def test_perfect_and_reversed_scorer():
    inlier, outlier = np.arange(10.0), np.arange(10.0) + 100
    perfect, _ = ood_metrics(inlier, outlier)
    assert perfect == {"auroc": 1.0, "aupr_in": 1.0, "aupr_out": 1.0, "fpr95": 0.0}
    reversed_, _ = ood_metrics(outlier, inlier)
    assert reversed_["auroc"] == 0.0 and reversed_["fpr95"] == 1.0


@pytest.mark.parametrize(
    "inlier, outlier, reason",
    [
        (np.ones(5), np.ones(7), "all scores are equal"),
        (np.r_[1.0, np.nan], np.ones(3), "NaN or infinite"),
        (np.r_[1.0, 2.0], np.r_[np.inf], "NaN or infinite"),
        (np.ones(0), np.ones(3), "no in-distribution or no OoD"),
    ],
)
def test_degenerate_scores_give_nan_with_a_reason(inlier, outlier, reason):
    values, note = ood_metrics(inlier, outlier)
    assert all(np.isnan(v) for v in values.values())
    assert reason in note


# Multiples of 1/8 in [-1000, 1000]: many ties, and no two values a float transform could merge.
scores = st.lists(st.integers(-20, 20) | st.integers(-8000, 8000), min_size=1, max_size=40).map(lambda v: np.array(v) / 8)


@settings(max_examples=200, deadline=None)
@given(scores, scores)
def test_auroc_is_unchanged_by_a_strictly_increasing_transform(positive, negative):
    """Ties stay ties and order stays order under exp(x / 100) + x^3, so AUROC cannot move."""
    def increasing(s):
        return np.exp(s / 100) + s**3

    assert auroc(increasing(positive), increasing(negative)) == pytest.approx(auroc(positive, negative), abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(scores, scores)
def test_auroc_of_negated_scores_is_one_minus_auroc(positive, negative):
    assert auroc(-positive, -negative) == pytest.approx(1 - auroc(positive, negative), abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(scores, scores)
def test_auroc_counts_ties_as_half_like_scikit_learn(positive, negative):
    labels = np.r_[np.ones(len(positive)), np.zeros(len(negative))]
    values = np.r_[positive, negative]
    assume(0 < labels.sum() < len(labels))
    assert auroc(positive, negative) == pytest.approx(roc_auc_score(labels, values), abs=1e-12)
