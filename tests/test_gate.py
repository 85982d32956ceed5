"""The noise-aware gate of `bench compare`: its tests of one row against scipy, its false-failure rate and its
power by simulation, and on real runs of the quick preset: a rerun with another thread count passes, a planted
drop of 0.05 fails on that scorer alone, or the printed detectable drop says why it cannot."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench.cli import main
from bench.compare import HEADLINE, compare, family_adjusted
from bench.leaderboard import read_csv, write_csv
from bench.stats import (INTERVALS, PAIRED, Difference, adjust_pvalues, interval_difference, paired_difference,
                         stable_std, t_interval, welch_difference)
from bench.tasks.rows import over_seeds

ALPHA = 0.05


# --- one row ------------------------------------------------------------------------------------------

def test_a_paired_difference_is_scipys_paired_t_test():
    rng = np.random.default_rng(0)
    a = rng.normal(0.7, 0.02, 5)
    b = a + rng.normal(-0.01, 0.01, 5)
    difference = paired_difference(a, b)
    assert difference.test == PAIRED and difference.delta == pytest.approx(np.mean(b - a), abs=1e-15)
    assert difference.p() == pytest.approx(stats.ttest_rel(b, a).pvalue, rel=1e-10)
    assert difference.p_worse(+1) == pytest.approx(stats.ttest_rel(b, a, alternative="less").pvalue, rel=1e-10)
    assert difference.p_worse(-1) == pytest.approx(stats.ttest_rel(b, a, alternative="greater").pvalue, rel=1e-10)
    failed = paired_difference(np.r_[a, 0.5], np.r_[b, np.nan])  # a failed seed leaves with its pair
    assert failed.p() == pytest.approx(difference.p(), rel=1e-12) and failed.seeds == (5, 5)
    assert paired_difference([0.7, np.nan], [0.6, 0.5]) is None


def test_a_welch_difference_is_scipys_welch_test():
    a, b = [0.70, 0.72, 0.75, np.nan], [0.68, 0.69, 0.66, 0.70, 0.67]
    difference = welch_difference(a, b)
    assert difference.p() == pytest.approx(stats.ttest_ind(b, a[:3], equal_var=False).pvalue, rel=1e-10)
    assert difference.p_worse(+1) == pytest.approx(
        stats.ttest_ind(b, a[:3], equal_var=False, alternative="less").pvalue, rel=1e-10)
    assert welch_difference([0.7, np.nan], b) is None


def test_an_interval_difference_is_a_normal_test_from_the_two_standard_errors():
    difference = interval_difference(-0.03, 0.01, 0.02)
    z = -0.03 / np.hypot(0.01, 0.02)
    assert difference.test == INTERVALS
    assert difference.p_worse(+1) == pytest.approx(stats.norm.cdf(z), rel=1e-12)
    assert difference.p() == pytest.approx(2 * stats.norm.cdf(z), rel=1e-12)
    # the normal test's detectable drop in closed form, and more seeds do not change it
    expected = (stats.norm.isf(0.01) + stats.norm.ppf(0.8)) * np.hypot(0.01, 0.02)
    assert difference.detectable_drop(0.01) == pytest.approx(expected, rel=1e-12)
    assert difference.detectable_drop(0.01, seeds=50) == difference.detectable_drop(0.01)


def test_with_no_noise_a_drop_is_certain_and_no_change_is_not_one():
    drop = paired_difference([0.5, 0.75, 1.0], [0.25, 0.5, 0.75])  # exact in binary: the differences agree exactly
    assert drop.standard_error() == 0.0
    assert drop.p_worse(+1) == 0.0 and drop.p_worse(-1) == 1.0
    same = paired_difference([0.7, 0.8, 0.9], [0.7, 0.8, 0.9])
    assert same.p() == 1.0 and same.p_worse(+1) == 1.0 and same.detectable_drop(0.05) == 0.0


@pytest.mark.parametrize("seeds, level", [(3, 0.002), (5, 0.01), (10, 0.05)])
def test_the_detectable_drop_is_found_with_80_percent_power(seeds, level):
    """Simulated paired runs whose per-seed differences have the stated spread, shifted by the detectable drop:
    the one-sided paired t-test at ``level`` finds the drop in 80% of them (20,000 runs: +-0.009 at 3 standard errors)."""
    spread = 0.02
    truth = Difference(0.0, PAIRED, (spread, 0.0), (seeds, seeds))
    drop = truth.detectable_drop(level)
    rng = np.random.default_rng(1)
    differences = rng.normal(-drop, spread, size=(20_000, seeds))
    t = differences.mean(axis=1) / (differences.std(axis=1, ddof=1) / np.sqrt(seeds))
    found = (stats.t.cdf(t, seeds - 1) <= level).mean()
    assert found == pytest.approx(0.8, abs=3 * np.sqrt(0.8 * 0.2 / 20_000))
    assert truth.detectable_drop(level, seeds=4 * seeds) < drop / 2  # more seeds: a smaller drop


@pytest.mark.parametrize("df, level", [(1, 0.05), (4, 0.01), (9, 0.05), (19, 0.001), (99, 0.0005)])
def test_the_power_at_the_detectable_drop_is_scipys_noncentral_t_where_scipy_converges(df, level):
    shift = Difference(0.0, PAIRED, (1.0, 0.0), (df + 1, df + 1)).detectable_drop(level) * np.sqrt(df + 1)
    assert stats.nct.sf(stats.t.isf(level, df), df, shift) == pytest.approx(0.8, abs=1e-6)


def test_spreads_and_intervals_of_p_values_of_1e_200_do_not_underflow():
    """Per-seed p-values of 1e-200: their squares underflow, so a plain std gave 0 and the interval NaN."""
    values = np.array([1e-200, 2e-200, 3e-200])
    assert np.std(values, ddof=1) == 0.0  # the underflow the harness must not inherit
    assert stable_std(values, ddof=1) == pytest.approx(1e-200, rel=1e-12)
    half = stats.t.ppf(0.975, 2) * 1e-200 / np.sqrt(3)
    assert t_interval(values) == pytest.approx((2e-200 - half, 2e-200 + half), rel=1e-12)
    assert paired_difference(values, 2 * values).standard_error() > 0
    rows = pd.DataFrame([{"dataset": "d", "model": "m", "task": "mislabel", "split": "train", "scorer": "vog",
                          "vs_scorer": "", "label_mode": "predicted", "seed": str(seed), "metric": "welch_p",
                          "value": value, "note": ""} for seed, value in enumerate(values)])
    mean = over_seeds(rows).iloc[0]
    assert mean.std_seeds == pytest.approx(1e-200, rel=1e-12)
    assert mean.ci_low == pytest.approx(2e-200 - half, rel=1e-12)


def test_holm_and_bh_are_statsmodels_multipletests():
    """The adjustments are written here (statsmodels collects garbage on every call); statsmodels is the oracle."""
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(4)
    for _ in range(20):
        p = rng.random(rng.integers(1, 40)) ** 3
        p[rng.random(p.size) < 0.2] = p[0]  # ties
        for method, name in (("holm", "holm"), ("bh", "fdr_bh")):
            np.testing.assert_allclose(adjust_pvalues(p, method), multipletests(p, method=name)[1], rtol=1e-12)


# --- the gate's error rates, by simulation --------------------------------------------------------------

def simulated_gate(rng, spreads: np.ndarray, families: np.ndarray, seeds: int, drops: np.ndarray) -> np.ndarray:
    """Which rows one simulated comparison fails: per row, per-seed values of A and a rerun B whose difference
    from A per seed has spread ``spreads`` and mean ``-drops`` (higher is better), tested as ``bench compare``
    does (its paired test is scipy's, above; here scipy's, vectorised over the rows) and adjusted by its code."""
    a = rng.normal(0.7, 0.05, size=(len(spreads), seeds))
    b = a - drops[:, None] + rng.normal(0.0, 1.0, size=a.shape) * spreads[:, None]
    p_worse = stats.ttest_rel(b, a, axis=1, alternative="less").pvalue
    return family_adjusted(p_worse, families) <= ALPHA


def families_of_a_quick_run(rng) -> tuple[np.ndarray, np.ndarray]:
    """15 headline rows and 60 per-split rows, their noise per seed spread over two orders of magnitude (as the
    quick preset's paired differences between thread counts are: 0.004 to 0.09)."""
    families = np.array([HEADLINE] * 15 + ["per-split"] * 60)
    return np.exp(rng.uniform(np.log(0.002), np.log(0.2), size=len(families))), families


def test_no_clean_row_fails_the_gate_more_than_alpha_of_the_time():
    """No real change: the share of comparisons in which any row fails is at most alpha (0.05), within three
    standard errors of 1,000 simulated comparisons at 3 seeds."""
    rng = np.random.default_rng(2)
    spreads, families = families_of_a_quick_run(rng)
    failures = np.array([simulated_gate(rng, spreads, families, 3, np.zeros(len(spreads))).any()
                         for _ in range(1000)])
    assert failures.mean() <= ALPHA + 3 * np.sqrt(ALPHA * (1 - ALPHA) / 1000)


def test_a_drop_of_the_printed_size_is_found_and_no_clean_row_is_blamed_for_it():
    """One headline row dropped by its detectable drop (at the level of the first Holm step): found in about 80%
    of 1,000 simulated comparisons; the clean rows fail in at most alpha of them."""
    rng = np.random.default_rng(3)
    spreads, families = families_of_a_quick_run(rng)
    level = ALPHA / 2 / 15  # two families, 15 headline rows
    drops = np.zeros(len(spreads))
    drops[0] = Difference(0.0, PAIRED, (spreads[0], 0.0), (3, 3)).detectable_drop(level)
    failed = np.array([simulated_gate(rng, spreads, families, 3, drops) for _ in range(1000)])
    margin = 3 * np.sqrt(0.8 * 0.2 / 1000)
    assert failed[:, 0].mean() == pytest.approx(0.8, abs=margin + 0.02)  # Holm's later steps add a little
    assert failed[:, 1:].any(axis=1).mean() <= ALPHA + 3 * np.sqrt(ALPHA * (1 - ALPHA) / 1000)


# --- real runs of the quick preset ------------------------------------------------------------------------

SCORERS = "loss,max-softmax,vog,aum,mahalanobis"  # five of the quick preset's scorers (mahalanobis: seed-free)
PLANTED, DROP = "loss", 0.05


@pytest.fixture(scope="module")
def reruns(tmp_path_factory):
    """The quick preset (digits-c, LeNet-5, 3 seeds) trained for 5 epochs, run with 2 torch threads and with 1:
    the same commit and seeds with other floating-point sums, which training amplifies."""
    boards = {}
    for threads in (2, 1):
        out = tmp_path_factory.mktemp(f"threads{threads}")
        assert main(["run", "--scorers", SCORERS, "--epochs", "5", "--threads", str(threads), "--out", str(out),
                     "--no-progress"]) == 0
        boards[threads] = out / "leaderboard.csv"
    return boards


def planted(path, folder, drop=DROP, scorer=PLANTED):
    """The leaderboard with every OoD AUROC of ``scorer`` lowered by ``drop`` (per seed and split, so every mean
    and interval end moves by ``drop`` and every spread stays): the audit's planted regression."""
    board = read_csv(path)
    lowered = (board.task == "ood") & (board.scorer == scorer) & (board.metric == "auroc")
    board.loc[lowered, ["value", "ci_low", "ci_high"]] -= drop
    out = folder / f"planted-{path.parent.name}.csv"
    write_csv(board, out)
    return out


def headline_auroc(result, scorer):
    rows = result.checked
    return rows[(rows.task == "ood") & (rows.split == "mean") & (rows.scorer == scorer)].iloc[0]


@pytest.mark.slow
def test_a_rerun_with_another_thread_count_passes_the_gate(reruns, capsys):
    a, b = read_csv(reruns[2]), read_csv(reruns[1])
    assert "1 thread" in b.device.iloc[0] and "2 threads" in a.device.iloc[0]
    assert (a.value - b.value).abs().max() > 0  # the thread count did change the sums: the proof is not vacuous
    assert main(["compare", str(reruns[2]), str(reruns[1]), "--fail-if-worse", "auroc",
                 "--fail-if-worse", "error_auroc"]) == 0
    out = capsys.readouterr().out
    assert "drops it detects with 80% power" in out and "at 10 seeds" in out


@pytest.mark.slow
def test_a_planted_drop_of_0_05_fails_the_gate_on_that_scorer_alone(reruns, tmp_path, capsys):
    """The audit's case: the same run with one scorer's OoD AUROCs lowered by 0.05. Welch's test over seeds
    passed its headline row; paired by seed, the drop is all there is."""
    worse = planted(reruns[2], tmp_path)
    assert main(["compare", str(reruns[2]), str(worse), "--fail-if-worse", "auroc"]) == 1
    result = compare(read_csv(reruns[2]), read_csv(worse), {"auroc": 0.0})
    assert set(result.drops.scorer) == {PLANTED}
    assert headline_auroc(result, PLANTED).worse
    assert result.drops.split.nunique() == result.checked[result.checked.scorer == PLANTED].split.nunique()


@pytest.mark.slow
def test_a_planted_drop_on_a_rerun_fails_or_the_detectable_drop_says_why_not(reruns, tmp_path, capsys):
    """Another thread count and the planted drop: at 3 seeds the gate finds it, or says the drop it could find
    is larger and how many seeds would find this one; no clean scorer is blamed either way."""
    worse = planted(reruns[1], tmp_path)
    code = main(["compare", str(reruns[2]), str(worse), "--fail-if-worse", "auroc"])
    out = capsys.readouterr().out
    result = compare(read_csv(reruns[2]), read_csv(worse), {"auroc": 0.0})
    assert set(result.drops.scorer) <= {PLANTED}
    row = headline_auroc(result, PLANTED)
    if row.worse:
        assert code == 1
    else:
        assert code == 0 and row.detectable > DROP
        missed = result.missed.set_index(["task", "split", "scorer"]).loc[("ood", "mean", PLANTED)]
        assert missed.seeds_to_detect in out and "would detect a drop of that size" in out
