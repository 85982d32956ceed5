"""The tasks on synthetic score tables whose answers are known by construction or by hand (boundary: test_boundary.py)."""

import numpy as np
import pandas as pd
import pytest

from bench.api import RESERVED_COLUMNS
from bench.metrics import precision_at_k, runs_for, spearman_brown
from bench.store import ScoreTable
from bench.tasks import evaluate
from bench.tasks.consistency import consistency
from bench.tasks.difficulty import deciles, difficulty, window_pairs
from bench.tasks.mislabel import mislabel
from bench.tasks.ood import ood


def make_table(seed, splits, failures=None, ood_splits=(), full_specs=None, observed=None):
    """A score table with the given split -> column -> values, as complete as a unit's: a split without a
    label or prediction gets label 0 and the prediction 0 for every example. Scorers are the non-reserved
    columns, each with its full spec (default: the spec) and the epochs it observed (default: 1 to 10)."""
    scorers = [c for c in next(iter(splits.values())) if c not in RESERVED_COLUMNS]
    for columns in splits.values():
        n = len(next(iter(columns.values())))
        columns.setdefault("label", np.zeros(n, dtype=int))
        columns.setdefault("pred", np.zeros(n, dtype=int))
    meta = {"dataset": "toy", "model": "mlp", "seed": seed, "label_mode": "predicted",
            "config": {"scorers": {spec: (full_specs or {}).get(spec, spec) for spec in scorers}},
            "observed": {spec: (observed or {}).get(spec, list(range(1, 11))) for spec in scorers},
            "scorers": scorers, "failures": failures or {}, "ood_splits": list(ood_splits)}
    return ScoreTable(meta, splits)


def value(board, scorer, metric, seed="all", split=None):
    rows = board[(board.scorer == scorer) & (board.metric == metric) & (board.seed == seed)]
    if split is not None:
        rows = rows[rows.split == split]
    assert len(rows) == 1, rows
    return rows.iloc[0]


# ---------- mislabel ----------

def noisy_train(n=2000, fraction=0.2, seed=0):
    rng = np.random.default_rng(seed)
    noisy = np.zeros(n, bool)
    noisy[rng.choice(n, int(fraction * n), replace=False)] = True
    return rng, noisy


def mislabel_table(seed=0, failures=None):
    rng, noisy = noisy_train(seed=seed)
    columns = {"noisy": noisy, "perfect": noisy + rng.uniform(0, 0.5, len(noisy)),
               "random": rng.normal(size=len(noisy)), "constant": np.ones(len(noisy))}
    return make_table(seed, {"train": columns}, failures)


def test_mislabel_perfect_random_and_constant_scorers():
    board = mislabel([mislabel_table(0), mislabel_table(1)])
    for metric in ("auroc", "ap", "precision_at_k"):
        assert value(board, "perfect", metric).value == 1.0
        assert np.isnan(value(board, "constant", metric).value)
    assert "all scores are equal" in value(board, "constant", "auroc").note
    assert abs(value(board, "random", "auroc").value - 0.5) < 0.05
    assert abs(value(board, "random", "precision_at_k").value - 0.2) < 0.05
    assert value(board, "perfect", "welch_p").value < 1e-100
    assert value(board, "random", "welch_p").value > 1e-3


def test_a_welch_p_that_underflows_to_0_says_so_in_its_notes():
    """Per-seed Welch p-values below the smallest float are written as 0, and their std over seeds as 0 with a
    degenerate interval: none of them may pass for a measured zero."""
    tables = []
    for seed in range(3):
        rng, noisy = noisy_train(seed=seed)
        tables.append(make_table(seed, {"train": {"noisy": noisy, "far": 1e3 * noisy + rng.uniform(0, 1e-3, len(noisy)),
                                                  "random": rng.normal(size=len(noisy))}}))
    board = mislabel(tables)
    assert value(board, "far", "welch_p", seed="0").value == 0.0  # scipy's p underflowed
    mean = value(board, "far", "welch_p")  # its std and interval too: they stand on the same row
    assert "underflows" in mean.note and mean.std_seeds == 0 and mean.ci_low == mean.ci_high == 0
    assert "underflows" not in value(board, "far", "auroc").note
    assert not board[board.scorer == "random"].note.str.contains("underflows").any()


def test_mislabel_welch_t_by_hand():
    table = mislabel_table(0)
    train = table.splits["train"]
    a, b = train["perfect"][train["noisy"]], train["perfect"][~train["noisy"]]
    by_hand = (a.mean() - b.mean()) / np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    board = mislabel([table])
    assert value(board, "perfect", "welch_t", seed="0").value == pytest.approx(by_hand)


def test_mislabel_needs_label_noise_and_reports_failed_scorers():
    clean = make_table(0, {"train": {"noisy": np.zeros(10, bool), "s": np.arange(10.0)}})
    assert mislabel([clean]).empty
    board = mislabel([mislabel_table(0, failures={"random": "boom"})])
    row = value(board, "random", "auroc", seed="0")
    assert np.isnan(row.value) and "scorer failed: boom" in row.note


def test_precision_at_k_shares_ties_out():
    # k = 2; the top score is a positive, then one of two tied scores (one positive) fills place 2
    assert precision_at_k(np.array([3.0, 2, 2, 1]), np.array([1, 1, 0, 0], bool)) == 0.75
    assert precision_at_k(np.array([3.0, 2, 2, 1]), np.array([1, 0, 0, 1], bool)) == 0.5


# ---------- difficulty ----------

def test_deciles_by_rank_and_ties():
    assert deciles(np.arange(20.0)).tolist() == [k // 2 for k in range(20)]
    assert deciles(np.r_[np.zeros(10), np.arange(1.0, 11)]).tolist() == [2] * 10 + [5, 5, 6, 6, 7, 7, 8, 8, 9, 9]


EARLY, LATE = list(range(1, 4)), list(range(8, 11))
FLIP_SPECS = {  # spec -> (full spec, epochs observed), as a unit records them
    "vog[window=early]": ("vog[window=early,norm=none]", EARLY), "vog": ("vog[window=late,norm=none]", LATE),
    "vog[norm=z,window=early]": ("vog[window=early,norm=z]", EARLY), "vog[norm=z]": ("vog[window=late,norm=z]", LATE),
    "vog[window=all]": ("vog[window=all,norm=none]", list(range(1, 11))),
    "loss": ("loss", list(range(1, 11))),
}


def difficulty_table(seed=0, n=1000):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 10, n)
    wrong = np.zeros(n, bool)
    wrong[rng.choice(n, 100, replace=False)] = True
    pred = np.where(wrong, (label + 1) % 10, label)
    test = {"label": label, "pred": pred, "oracle": wrong + rng.uniform(0, 0.5, n),
            "random": rng.normal(size=n), "constant": np.zeros(n),
            "vog[window=early]": -1.0 * wrong + rng.uniform(0, 0.5, n), "vog": wrong + rng.uniform(0, 0.5, n),
            "vog[norm=z,window=early]": wrong + rng.uniform(0, 0.5, n), "vog[norm=z]": wrong + rng.uniform(0, 0.5, n),
            "vog[window=all]": rng.normal(size=n), "loss": rng.normal(size=n)}
    return make_table(seed, {"test": test}, full_specs={s: f for s, (f, _) in FLIP_SPECS.items()},
                      observed={s: epochs for s, (_, epochs) in FLIP_SPECS.items()})


def test_difficulty_error_by_decile_for_a_perfect_and_a_random_scorer():
    board = difficulty([difficulty_table(0), difficulty_table(1)])
    errors = [value(board, "oracle", f"error_decile_{k:02d}").value for k in range(1, 11)]
    assert errors == [0.0] * 9 + [1.0]
    assert value(board, "oracle", "error_auroc").value == 1.0
    ratio = value(board, "oracle", "error_ratio", seed="0")
    assert ratio.value == np.inf and "no errors in the bottom decile" in ratio.note
    assert abs(value(board, "random", "error_auroc").value - 0.5) < 0.05
    constant = value(board, "constant", "error_auroc")
    assert np.isnan(constant.value) and "all scores are equal" in constant.note


def test_difficulty_ratio_is_top_over_bottom_decile():
    n = 100
    scores = np.arange(n, dtype=float)
    wrong = np.zeros(n, bool)
    wrong[[0, 90, 91, 92]] = True  # bottom decile 1/10 wrong, top decile 3/10
    table = make_table(0, {"test": {"label": np.zeros(n, int), "pred": wrong.astype(int), "s": scores}})
    assert value(difficulty([table]), "s", "error_ratio", seed="0").value == pytest.approx(3.0)


def test_early_late_flip_pairs_variants_differing_in_one_parameter_that_read_disjoint_windows():
    """Pairs come from the full specs and observed epochs stored with the unit, never from today's defaults:
    vog[window=all] overlaps both windows, and variants that differ in norm as well are not paired."""
    table = difficulty_table(0)
    assert window_pairs(table) == [("vog[window=early]", "vog"), ("vog[norm=z,window=early]", "vog[norm=z]")]
    board = difficulty([difficulty_table(0), difficulty_table(1)])
    flip = value(board, "vog[window=early]", "early_late_flip")
    assert (flip.vs_scorer, flip.value) == ("vog", 1.0)
    flip = value(board, "vog[norm=z,window=early]", "early_late_flip")
    assert (flip.vs_scorer, flip.value) == ("vog[norm=z]", 0.0)


# ---------- consistency ----------

def test_split_half_and_spearman_brown_by_hand():
    # seeds 0 and 1 rank five examples 1..5; seeds 2 and 3 swap the last two. Halves average to
    # those two rankings, whose Spearman is 1 - 6 * 2 / (5 * 24) = 0.9. One seed's reliability is
    # 0.9 / (2 - 0.9) = 0.818..., and averaging 2 seeds gives 2 * 0.818 / 1.818 = 0.9: 2 runs.
    first, second = np.arange(1.0, 6), np.array([1.0, 2, 3, 5, 4])
    tables = [make_table(seed, {"train": {"s": s}, "test": {"s": s}}) for seed, s in enumerate([first, first, second, second])]
    board = consistency(tables)
    assert value(board, "s", "split_half", split="test").value == pytest.approx(0.9)
    assert value(board, "s", "runs_for_0.9", split="test").value == 2
    assert value(board, "s", "spearman_seeds", split="test").value == pytest.approx((2 * 1 + 4 * 0.9) / 6)
    assert spearman_brown(0.9, 1 / 2) == pytest.approx(0.9 / 1.1)
    assert runs_for(0.9, 0.5) == 9 and runs_for(0.9, 0.95) == 1 and runs_for(0.9, -0.1) == np.inf


def test_consistency_cross_scorer_matrix_and_degenerate_cases():
    rng = np.random.default_rng(0)
    tables = []
    for seed in range(3):
        a = rng.normal(size=200)
        tables.append(make_table(seed, {split: {"a": a, "neg": -a, "flat": np.zeros(200)} for split in ("train", "test")}))
    board = consistency(tables)
    cross = board[(board.scorer == "a") & (board.metric == "spearman_with") & (board.split == "train")]
    assert dict(zip(cross.vs_scorer, cross.value)) == {"neg": pytest.approx(-1.0), "flat": pytest.approx(np.nan, nan_ok=True)}
    assert abs(value(board, "a", "spearman_seeds", split="train").value) < 0.2
    flat = value(board, "flat", "split_half", split="test")
    assert np.isnan(flat.value) and flat.note == "every seed: all scores are equal, so they rank nothing"
    one_seed = value(consistency(tables[:1]), "a", "split_half", split="test")
    assert np.isnan(one_seed.value) and one_seed.note == "needs at least 2 seeds"


# ---------- ood, and all tasks together ----------

def test_ood_task_perfect_random_constant():
    rng = np.random.default_rng(0)
    def split(shift):
        return {"label": np.zeros(500, int), "pred": np.zeros(500, int), "noisy": np.zeros(500, bool), "perfect": rng.uniform(size=500) + shift,
                "random": rng.normal(size=500), "constant": np.ones(500)}
    tables = [make_table(seed, {"train": split(0), "test": split(0), "blur": split(2)}, ood_splits=["blur"]) for seed in (0, 1)]
    board = ood(tables)
    assert value(board, "perfect", "auroc", split="mean").value == 1.0
    assert abs(value(board, "random", "auroc", split="mean").value - 0.5) < 0.06
    assert np.isnan(value(board, "constant", "auroc", split="mean").value)
    assert set(evaluate(tables).task) == {"ood", "difficulty", "consistency"}


def test_the_report_draws_the_flip_of_each_early_late_pair():
    from bench.report import decile_rows, flip_section

    board = difficulty([difficulty_table(0), difficulty_table(1)]).assign(full_spec="")
    section = flip_section(board, decile_rows(board))
    assert "vog[window=early] vs vog: flips on 100% of seeds" in section
    assert "vog[norm=z,window=early] vs vog[norm=z]: flips on 0% of seeds" in section
    assert section.count("data:image/png;base64,") == 1


# ---------- intervals ----------

def shifted_ood_table(seed, n=400):
    """Clean test scores N(0, 1), one OoD split N(1, 1) and one N(0.5, 1), for a scorer `s`."""
    rng = np.random.default_rng(seed)
    splits = {"test": {"s": rng.normal(size=n), "label": np.zeros(n, int), "pred": np.zeros(n, int)},
              "far": {"s": rng.normal(1.0, size=n)}, "near": {"s": rng.normal(0.5, size=n)}}
    return make_table(seed, splits, ood_splits=("far", "near"))


def test_intervals_over_seeds_are_t_intervals_of_the_per_seed_values():
    from scipy import stats

    board = ood([shifted_ood_table(seed) for seed in range(4)])
    for split in ("far", "mean"):
        per_seed = [value(board, "s", "auroc", str(seed), split).value for seed in range(4)]
        low, high = stats.t.interval(0.95, 3, loc=np.mean(per_seed), scale=stats.sem(per_seed))
        mean = value(board, "s", "auroc", split=split)
        assert (mean.ci_low, mean.ci_high, mean.n_seeds, mean.interval) == (pytest.approx(low), pytest.approx(high), 4,
                                                                            "t over seeds")
        assert mean.std_seeds == pytest.approx(np.std(per_seed, ddof=1))
    board = mislabel([mislabel_table(0), mislabel_table(1)])
    assert np.isfinite(value(board, "random", "auroc").ci_low)


def test_the_mean_over_splits_and_seeds_carries_both_spreads_as_columns():
    """split=mean, seed=all: the mean over splits of the seed means, ``std_splits`` the population std over the
    splits of the seed means, ``std_seeds`` the sample std over seeds of the per-seed split means."""
    board = ood([shifted_ood_table(seed) for seed in range(3)])
    auroc = {(split, seed): value(board, "s", "auroc", seed, split).value for split in ("far", "near") for seed in "012"}
    per_split = {split: np.mean([auroc[split, seed] for seed in "012"]) for split in ("far", "near")}
    per_seed = [np.mean([auroc[split, seed] for split in ("far", "near")]) for seed in "012"]
    mean = value(board, "s", "auroc", split="mean")
    assert mean.value == pytest.approx(np.mean(list(per_split.values())))
    assert mean.std_splits == pytest.approx(np.std(list(per_split.values())))
    assert mean.std_seeds == pytest.approx(np.std(per_seed, ddof=1)) and mean.n_seeds == 3
    one_seed = value(board, "s", "auroc", "1", "mean")
    assert one_seed.std_splits == pytest.approx(np.std([auroc["far", "1"], auroc["near", "1"]]))
    assert np.isnan(one_seed.std_seeds) and pd.isna(one_seed.n_seeds) and one_seed.interval == ""


def test_evaluate_names_both_scorers_of_a_pair_in_full_and_says_why_one_seed_has_no_spread():
    test = difficulty_table(0).splits["test"]
    table = make_table(0, {"test": test, "train": {**test, "noisy": np.zeros(len(test["label"]), bool)}},
                       full_specs={s: f for s, (f, _) in FLIP_SPECS.items()},
                       observed={s: epochs for s, (_, epochs) in FLIP_SPECS.items()})
    board = evaluate([table])
    flip = value(board, "vog[window=early]", "early_late_flip")
    assert (flip.vs_scorer, flip.full_spec, flip.vs_full_spec, flip.n_seeds) == (
        "vog", "vog[window=early,norm=none]", "vog[window=late,norm=none]", 1)
    assert np.isnan(flip.std_seeds) and flip.note.startswith("one seed")
    unpaired = board[~board.metric.isin(["early_late_flip", "spearman_with"])]
    assert (unpaired.vs_scorer == "").all() and (unpaired.vs_full_spec == "").all()


def test_one_seed_gets_asymptotic_intervals_over_examples_and_its_mean_adds_the_terms_of_shared_examples():
    """By default: DeLong's interval for AUROC, the delta method's for the others, from ``bench.influence``; the mean
    over the two splits adds the terms of the in-distribution examples they share."""
    from bench.influence import influences, normal_interval, standard_error

    table = shifted_ood_table(0)
    board = ood([table])
    inlier = table.splits["test"]["s"]
    n = len(inlier)
    found = {}
    for split in ("far", "near"):
        outlier = table.splits[split]["s"]
        labels = np.r_[np.zeros(n, bool), np.ones(len(outlier), bool)]
        found[split] = influences(labels, np.r_[inlier, outlier])
        for metric, kind in (("auroc", "DeLong"), ("fpr95", "delta method")):
            value_, terms = found[split][metric]
            low, high = normal_interval(value_, standard_error(terms, np.arange(len(labels)), labels.astype(int)))
            row = value(board, "s", metric, split=split)
            assert (row.ci_low, row.ci_high, row.interval) == (low, high, f"{kind} over examples (stratified)")
    m = len(table.splits["far"]["s"])
    terms = np.r_[(found["far"]["auroc"][1][:n] + found["near"]["auroc"][1][:n]), found["far"]["auroc"][1][n:],
                  found["near"]["auroc"][1][n:]] / 2
    units = np.r_[np.arange(n), n + np.arange(2 * m)]
    strata = np.r_[np.zeros(n), np.ones(m), np.full(m, 2)].astype(int)
    mean = value(board, "s", "auroc", split="mean")
    expected = normal_interval(mean.value, standard_error(terms, units, strata))
    assert (mean.ci_low, mean.ci_high) == pytest.approx(expected, abs=1e-15)
    assert mean.ci_low < mean.value < mean.ci_high


def test_one_seed_can_get_a_bootstrap_over_examples_whose_mean_averages_the_resamples():
    from bench.stats import bootstrap_distribution, percentile_interval
    from bench.tasks.rows import OverExamples

    table = shifted_ood_table(0)
    board = ood([table], OverExamples("bootstrap", 500))
    inlier = table.splits["test"]["s"]
    resampled = {}
    for split in ("far", "near"):
        outlier = table.splits[split]["s"]
        labels = np.r_[np.zeros(len(inlier), bool), np.ones(len(outlier), bool)]
        resampled[split] = bootstrap_distribution(labels, np.r_[inlier, outlier], resamples=500, seed=0)["auroc"]
        low, high = percentile_interval(resampled[split])
        mean = value(board, "s", "auroc", split=split)
        assert (mean.ci_low, mean.ci_high, mean.interval) == (low, high, "bootstrap over examples (stratified)")
        assert low < mean.value < high
    low, high = percentile_interval((resampled["far"] + resampled["near"]) / 2)
    assert (value(board, "s", "auroc", split="mean").ci_low, value(board, "s", "auroc", split="mean").ci_high) == (low, high)
    for how in (OverExamples("bootstrap", 0), OverExamples("none")):
        unbootstrapped = value(ood([table], how), "s", "auroc", split="far")
        assert np.isnan(unbootstrapped.ci_low) and unbootstrapped.interval == ""


def test_the_flip_over_seeds_has_the_exact_binomial_interval():
    from scipy.stats import binomtest

    from bench.tasks.difficulty import POLICIES
    from bench.tasks.rows import with_seed_means

    flips = [1, 1, 0, 1, 1, 1, 0, 1, 1, 1]
    keys = {"dataset": "d", "model": "m", "task": "difficulty", "label_mode": "predicted", "split": "test",
            "scorer": "a", "vs_scorer": "b", "metric": "early_late_flip", "note": ""}
    rows = with_seed_means([{**keys, "seed": str(k), "value": float(v)} for k, v in enumerate(flips)], POLICIES)
    expected = binomtest(8, 10).proportion_ci(method="exact")  # 0.444 to 0.975: the t-interval would pass 1
    mean = rows[rows.seed == "all"].iloc[0]
    assert (mean.ci_low, mean.ci_high, mean.interval) == (expected.low, expected.high, "exact binomial over seeds")


def test_the_model_rows_say_how_much_of_the_noisy_training_labels_it_fits():
    """Hand-made: 10 training examples, 4 shuffled; the model predicts 8 of the 10 labels as given, 3 of the 4
    shuffled ones among them."""
    from bench.schema import MODEL_ROW
    from bench.tasks.mislabel import mislabel

    noisy = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], bool)
    label = np.arange(10) % 3
    pred = label.copy()
    pred[[0, 5]] = (label[[0, 5]] + 1) % 3  # one shuffled and one clean label not fitted
    train = {"label": label, "pred": pred, "noisy": noisy, "s": np.arange(10.0)}
    board = mislabel([make_table(0, {"train": train, "test": train}), make_table(1, {"train": train, "test": train})])
    model = board[(board.scorer == MODEL_ROW) & (board.seed == "all")].set_index("metric").value
    assert model["train_accuracy"] == 0.8 and model["memorised"] == 0.75
