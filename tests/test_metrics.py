"""The detection and rank metrics on cases computed by hand, including ties and degenerate input, and against
scikit-learn and pytorch-ood."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.metrics import auroc, average_precision, fpr_at_tpr, ood_metrics, spearman_matrix


def test_metrics_with_ties_across_the_classes():
    """Descending thresholds 3 | 2 | 1 | 0 flag OoD/in counts 1/0, 2/1, 3/3, 3/4 (1 and 2 are tied across classes).

    AUROC over the 12 (OoD, in) pairs, ties half: OoD 1 beats 0 and ties two 1s (2), OoD 2 beats 0, 1, 1
    and ties 2 (3.5), OoD 3 beats all four (4).
    """
    values, note = ood_metrics(np.array([0.0, 1, 1, 2]), np.array([1.0, 2, 3]))
    assert note == ""
    assert values["auroc"] == pytest.approx((2 + 3.5 + 4) / 12, abs=1e-12)
    # OoD by descending score: recall steps of 1/3 at precisions 1, 2/3, 1/2
    assert values["aupr_out"] == pytest.approx((1 + 2 / 3 + 1 / 2) / 3, abs=1e-12)
    # in-distribution by ascending score: 0 | 1 | 2 give in/OoD counts 1/0, 3/1, 4/2
    assert values["aupr_in"] == pytest.approx(1 / 4 * 1 + 2 / 4 * 3 / 4 + 1 / 4 * 4 / 6, abs=1e-12)
    # 95% of 3 OoD examples needs all 3, first reached at threshold 1, which flags 3 of the 4 inliers
    assert values["fpr95"] == 0.75
    # 95% of 4 inliers needs all 4, first kept from the bottom at threshold 2, which accepts OoD 1 and 2 of 3
    assert values["fpr95_id"] == pytest.approx(2 / 3, abs=1e-12)


def test_average_precision_by_hand():
    assert average_precision(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 1, 0])) == pytest.approx(
        1 / 2 * 1 + 1 / 2 * 2 / 3, abs=1e-12)


def test_fpr95_takes_the_first_threshold_flagging_95_percent_of_the_positives():
    """19 of 20 OoD scores (2..20) are reached at threshold 2, flagging only the inlier at 30; all 20
    would also flag the one at 1.5."""
    assert fpr_at_tpr(np.arange(1.0, 21), np.array([0.0, 1.5, 30])) == pytest.approx(1 / 3)


def test_fpr95_id_takes_the_first_threshold_from_the_bottom_keeping_95_percent_of_the_inliers():
    """19 of 20 inlier scores (1..19) are kept at threshold 19, which accepts the OoD examples at 0.5 and 18.5 but not
    the one at 25: 2 of 3; all 20 would also accept the one at 19.5. fpr95, OoD positive, is another point: the 3
    OoD examples are all flagged only at 0.5, where 20 of 20 inliers are."""
    values, _ = ood_metrics(np.arange(1.0, 21), np.array([0.5, 18.5, 25]))
    assert values["fpr95_id"] == pytest.approx(2 / 3) and values["fpr95"] == 1.0


def test_fpr_at_tpr_compares_counts_not_rates():
    """7 / 100 >= 0.07 as floats but 7 < 0.07 * 100 = 7.000000000000001: 8 positives are needed, and the
    8th highest (92) comes after the negative at 92.5."""
    assert fpr_at_tpr(np.arange(100.0), np.array([92.5]), tpr=0.07) == 1.0


def test_spearman_matrix_by_hand_with_ties_a_constant_row_and_two_rows():
    """Ranks of [1, 1, 2, 2] are [1.5, 1.5, 3.5, 3.5]; centred against [-1.5, -0.5, 0.5, 1.5] they give
    4 / (2 * sqrt(5)). A constant row has no correlation: NaN, without a warning."""
    rows = np.array([[1.0, 2, 3, 4], [4.0, 3, 2, 1], [1.0, 1, 2, 2], [5.0, 5, 5, 5]])
    rho = 2 / np.sqrt(5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        matrix = spearman_matrix(rows)
        pair = spearman_matrix(rows[[0, 2]])
    expected = np.array([[1, -1, rho, np.nan], [-1, 1, -rho, np.nan], [rho, -rho, 1, np.nan], [np.nan] * 4])
    np.testing.assert_allclose(matrix, expected, atol=1e-12)
    np.testing.assert_allclose(pair, [[1, rho], [rho, 1]], atol=1e-12)


def test_perfect_and_reversed_scorer():
    inlier, outlier = np.arange(10.0), np.arange(10.0) + 100
    perfect, _ = ood_metrics(inlier, outlier)
    assert perfect == pytest.approx({"auroc": 1.0, "aupr_in": 1.0, "aupr_out": 1.0, "fpr95": 0.0, "fpr95_id": 0.0},
                                    abs=1e-12)
    reversed_, _ = ood_metrics(outlier, inlier)
    assert reversed_["auroc"] == 0.0 and reversed_["fpr95"] == 1.0 and reversed_["fpr95_id"] == 1.0


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
def test_auroc_is_the_fraction_of_pairs_won_ties_counting_half(positive, negative):
    wins = (positive[:, None] > negative) + 0.5 * (positive[:, None] == negative)
    assert auroc(positive, negative) == pytest.approx(wins.mean(), abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(scores, scores)
def test_detection_metrics_equal_scikit_learns(positive, negative):
    """The one-sort metrics against scikit-learn's roc_auc_score, average_precision_score and roc_curve (the
    first threshold from the top reaching 95% of the positives; for fpr95_id, of the negatives, by the ROC curve of
    the negatives as positives and the scores negated), ties included."""
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    labels = np.r_[np.ones(len(positive), bool), np.zeros(len(negative), bool)]
    both = np.r_[positive, negative]
    values, note = ood_metrics(negative, positive)
    if note:
        return
    false_rate, true_rate, _ = roc_curve(labels, both, drop_intermediate=False)
    id_false_rate, id_true_rate, _ = roc_curve(~labels, -both, drop_intermediate=False)
    expected = {"auroc": roc_auc_score(labels, both), "aupr_out": average_precision_score(labels, both),
                "aupr_in": average_precision_score(~labels, -both),
                "fpr95": false_rate[np.argmax(np.rint(true_rate * len(positive)) >= 0.95 * len(positive))],
                "fpr95_id": id_false_rate[np.argmax(np.rint(id_true_rate * len(negative)) >= 0.95 * len(negative))]}
    assert values == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed, n_in, n_out, decimals", [(0, 300, 200, 1), (1, 1000, 40, 2), (2, 57, 500, 0),
                                                         (3, 2000, 2000, 3)])
def test_fpr95_is_pytorch_oods_fpr95tpr_and_fpr95_id_is_it_with_the_classes_swapped(seed, n_in, n_out, decimals):
    """pytorch-ood 0.4.0's OODMetrics (OpenOOD v1.5's definitions: OoD, label < 0, positive; larger score = more OoD)
    gives fpr95 and AUROC; with the in-distribution examples labelled OoD and the scores negated, its FPR95TPR is the
    ODIN / energy papers' convention, fpr95_id. Rounded scores: ties within and across the classes."""
    import torch

    from oracles import pytorch_ood

    rng = np.random.default_rng(seed)
    inlier, outlier = np.round(rng.normal(size=n_in), decimals), np.round(1.0 + rng.normal(size=n_out), decimals)
    values, _ = ood_metrics(inlier, outlier)
    scores = torch.from_numpy(np.r_[inlier, outlier])
    ood_labels = torch.from_numpy(np.r_[np.zeros(n_in, np.int64), -np.ones(n_out, np.int64)])
    reference = pytorch_ood("metrics").OODMetrics().update(scores, ood_labels).compute()
    swapped = pytorch_ood("metrics").OODMetrics().update(-scores, -1 - ood_labels).compute()
    assert values["auroc"] == pytest.approx(reference["AUROC"], abs=1e-12)
    assert values["fpr95"] == pytest.approx(reference["FPR95TPR"], abs=1e-12)
    assert values["fpr95_id"] == pytest.approx(swapped["FPR95TPR"], abs=1e-12)
