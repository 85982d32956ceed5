"""`bench show` and `bench compare` on small hand-written leaderboards."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.cli import main, parse_tolerances
from bench.compare import compare
from bench.errors import BenchError
from bench.leaderboard import read_csv, write_csv
from bench.schema import COLUMNS, STATISTICS
from bench.upgrade import upgrade


def board(values, dataset="mnist-c", label_mode="predicted"):
    """A leaderboard with the given {(task, split, scorer, metric): value} rows over all seeds, written as bench
    0.6 wrote them (a statistic as the metric with a suffix, ``auroc_ci_low``) and read as today's columns."""
    rows = [{"dataset": dataset, "model": "lenet", "task": task, "split": split, "scorer": scorer,
             "full_spec": FULL.get(scorer, scorer), "label_mode": label_mode, "seed": "all", "metric": metric, "value": value, "note": "",
             "bench_version": "0.1.0", "git_sha": "abc", "config_hash": "123", "torch_version": "2",
             "device": "cpu", "created_at": "2026-01-01T00:00:00+00:00"}
            for (task, split, scorer, metric), value in values.items()]
    return upgrade(pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in STATISTICS + ["vs_scorer", "vs_full_spec"]]))


FULL = {"vog": "vog[window=late,norm=none,target=prob,label=checkpoint]",
        "kde": "kde[features=pixels,fit_size=1000,pca=none,bandwidth=1.0]"}
BASE = {("ood", "mean", "vog", "auroc"): 0.80, ("ood", "mean", "vog", "auroc_std_corruptions"): 0.10,
        ("ood", "mean", "vog", "auroc_std_seeds"): 0.02, ("ood", "mean", "vog", "fpr95"): 0.50,
        ("ood", "mean", "vog", "auroc_ci_low"): 0.75, ("ood", "mean", "vog", "auroc_ci_high"): 0.85,
        ("ood", "mean", "kde", "auroc"): 0.70, ("ood", "blur", "vog", "auroc"): 0.90,
        ("mislabel", "train", "loss", "auroc"): 0.95}


def write(tmp_path, name, frame):
    path = tmp_path / name
    write_csv(frame, path)
    return path


def test_compare_deltas_and_drops():
    changed = {**BASE, ("ood", "mean", "vog", "auroc"): 0.75, ("ood", "mean", "vog", "fpr95"): 0.45,
               ("ood", "mean", "kde", "auroc"): np.nan}
    result = compare(board(BASE), board(changed), parse_tolerances(["auroc=0.01", "fpr95=0.01"]), alpha=1.0)  # raw
    delta = result.joined.set_index(["split", "scorer", "metric"]).delta
    assert delta["mean", "vog", "auroc"] == pytest.approx(-0.05)
    assert delta["mean", "vog", "fpr95"] == pytest.approx(-0.05)  # lower FPR: better, not a drop
    assert delta["blur", "vog", "auroc"] == 0
    drops = set(zip(result.drops.scorer, result.drops.metric))
    assert drops == {("vog", "auroc"), ("kde", "auroc")}  # a value that became NaN is a drop too
    assert compare(board(BASE), board(changed), parse_tolerances(["fpr95=0"]), alpha=1.0).drops.empty


def test_compare_cli_exit_codes(tmp_path, capsys):
    a = write(tmp_path, "a.csv", board(BASE))
    b = write(tmp_path, "b.csv", board({**BASE, ("ood", "mean", "vog", "auroc"): 0.78}))
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "0.8000" in out and "0.7800" in out and "-0.0200" in out
    assert main(["compare", str(a), str(b), "--fail-if-drops", "auroc=0.05"]) == 0
    assert main(["compare", str(a), str(b), "--fail-if-drops", "auroc=0.01"]) == 0  # within the intervals' noise
    assert "no drop beyond the tolerance and the noise" in capsys.readouterr().out
    assert main(["compare", str(a), str(b), "--fail-if-drops", "auroc=0.01", "--alpha", "1"]) == 1  # raw
    assert "1 rows got worse" in capsys.readouterr().out
    assert main(["compare", str(a), str(b), "--fail-if-worse", "auroc", "--alpha", "1"]) == 1
    assert main(["compare", str(a), str(b), "--fail-if-worse", "auroc", "--alpha", "0"]) == 2
    assert "--alpha 0.0 is outside (0, 1]" in capsys.readouterr().err
    assert main(["compare", str(a), str(b), "--fail-if-drops", "error_decile_01=0.1"]) == 2
    assert "has no better direction" in capsys.readouterr().err


def test_compare_refuses_to_join_different_protocols(tmp_path, capsys):
    a = write(tmp_path, "a.csv", board(BASE))
    other_data = write(tmp_path, "b.csv", board(BASE, dataset="digits-c"))
    oracle = write(tmp_path, "c.csv", board(BASE, label_mode="true"))
    for other in (other_data, oracle):
        assert main(["compare", str(a), str(other)]) == 2
        assert "different protocols" in capsys.readouterr().err
    both = write(tmp_path, "d.csv", pd.concat([board(BASE), board(BASE, dataset="digits-c")]))
    assert main(["compare", str(a), str(both)]) == 0
    out = capsys.readouterr().out
    assert "only in B" in out and "digits-c" in out
    assert f"{len(board(BASE))} rows joined" in out


def test_show_prints_mean_std_and_interval(tmp_path, capsys):
    path = write(tmp_path, "a.csv", board(BASE))
    assert main(["show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "0.800 ± 0.100 [0.750, 0.850]" in out and "mislabel:" in out
    assert "95% intervals: one seed, so a bootstrap over examples" in out
    assert main(["show", str(path), "--task", "consistency"]) == 2


def test_read_csv_reads_a_gzipped_leaderboard_as_the_plain_one(tmp_path):
    import gzip

    plain = write(tmp_path, "a.csv", board(BASE))
    packed = tmp_path / "a.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    pd.testing.assert_frame_equal(read_csv(packed), read_csv(plain))
    broken = tmp_path / "b.csv.gz"
    broken.write_bytes(gzip.compress(plain.read_bytes())[:100])
    with pytest.raises(BenchError, match="is not a readable CSV"):
        read_csv(broken)


def test_read_csv_names_the_problem(tmp_path):
    with pytest.raises(BenchError, match="no leaderboard at"):
        read_csv(tmp_path / "missing.csv")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b\n1,2\n")
    with pytest.raises(BenchError, match="not a bench leaderboard: it has no column dataset"):
        read_csv(wrong)


def test_merge_stacks_label_modes_and_refuses_a_row_measured_twice(tmp_path, capsys):
    predicted = write(tmp_path, "predicted.csv", board(BASE))
    oracle = write(tmp_path, "true.csv", board(BASE, label_mode="true"))
    out = tmp_path / "merged.csv"
    assert main(["merge", str(predicted), str(oracle), "--out", str(out)]) == 0
    merged = read_csv(out)
    assert len(merged) == 2 * len(board(BASE))
    for mode, path in (("predicted", predicted), ("true", oracle)):
        pd.testing.assert_frame_equal(merged[merged.label_mode == mode].reset_index(drop=True), read_csv(path))
    assert main(["merge", str(predicted), str(predicted), "--out", str(tmp_path / "twice.csv")]) == 2
    error = capsys.readouterr().err
    assert f"{len(board(BASE))} measurements are in more than one file" in error and "predicted.csv" in error
    assert not (tmp_path / "twice.csv").exists()


def test_values_round_trip_at_full_precision(tmp_path):
    values = {("ood", "mean", "vog", "auroc"): 1 / 3, ("ood", "mean", "kde", "auroc"): np.pi * 1e-7,
              ("ood", "blur", "vog", "auroc"): 0.1 + 0.2}
    frame = board(values)
    pd.testing.assert_series_equal(read_csv(write(tmp_path, "a.csv", frame)).value, frame.value, check_exact=True)


def test_compare_and_merge_join_on_the_full_spec_never_the_short_name_alone(tmp_path, capsys):
    """A leaderboard made when `vog`'s default was the logit target holds another method under the same name."""
    old = board(BASE).assign(full_spec=lambda f: f.full_spec.str.replace("target=prob", "target=logit"))
    result = compare(old, board(BASE), {})
    assert set(result.joined.scorer) == {"kde", "loss"}  # vog is not joined to the other vog
    before_full_specs = board(BASE).drop(columns=["full_spec", *STATISTICS, "vs_scorer", "vs_full_spec"])
    path = tmp_path / "old.csv"
    before_full_specs.to_csv(path, index=False)
    assert (read_csv(path).full_spec == "unknown").all()
    assert main(["compare", str(path), str(write(tmp_path, "new.csv", board(BASE)))]) == 2
    assert "does not record its scorers' full parameters" in capsys.readouterr().err
    merged = tmp_path / "merged.csv"
    assert main(["merge", str(write(tmp_path, "old-vog.csv", old[old.scorer == "vog"])), str(tmp_path / "new.csv"), "--out", str(merged)]) == 0
    assert set(read_csv(merged).full_spec) >= {FULL["vog"], FULL["vog"].replace("prob", "logit")}


def test_show_compare_and_merge_run_without_torch(tmp_path):
    """Reading a leaderboard needs pandas, not torch: run the three commands with `import torch` failing."""
    import subprocess
    import sys

    a, b = write(tmp_path, "a.csv", board(BASE)), write(tmp_path, "b.csv", board(BASE, label_mode="true"))
    script = ("import sys\n"
              "class NoTorch:\n"  # any `import torch` now raises ImportError, as where torch is not installed
              "    def find_spec(self, name, path=None, target=None):\n"
              "        if name.partition('.')[0] == 'torch': raise ImportError('torch is not installed')\n"
              "sys.meta_path.insert(0, NoTorch())\n"
              "from bench.cli import main\n"
              f"codes = [main(['show', {str(a)!r}]), main(['compare', {str(a)!r}, {str(a)!r}]),\n"
              f"         main(['merge', {str(a)!r}, {str(b)!r}, '--out', {str(tmp_path / 'm.csv')!r}])]\n"
              "assert 'torch' not in sys.modules\n"
              "sys.exit(max(codes))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "AUROC" in result.stdout and "rows joined" in result.stdout and (tmp_path / "m.csv").is_file()


def test_wide_tables_are_split_to_fit_the_terminal_and_p_values_are_scientific(tmp_path, capsys):
    from bench.tables import text_table

    frame = pd.DataFrame({"scorer": ["vog", "kde"], **{f"corruption_{k:02d}": ["0.500", "0.750"] for k in range(20)}})
    text = text_table(frame, width=120)
    assert max(map(len, text.splitlines())) <= 120
    blocks = text.split("\n\n")
    assert len(blocks) > 1 and all(block.startswith("scorer") for block in blocks)
    assert sum(block.splitlines()[0].count("corruption_") for block in blocks) == 20  # every column, once
    path = write(tmp_path, "a.csv", board({**BASE, ("mislabel", "train", "loss", "welch_p"): 3.2e-45,
                                           ("mislabel", "train", "loss", "welch_t"): 14.5}))
    assert main(["show", str(path), "--task", "mislabel"]) == 0
    out = capsys.readouterr().out
    assert "3.20e-45" in out and "Welch t" in out and "14.500" in out


def seeded(means, noise, seeds=5, seed=0, **keys):
    """A leaderboard of per-seed rows ({(split, scorer): mean} + N(0, noise) per seed) and their means over seeds."""
    rng = np.random.default_rng(seed)
    rows = []
    for (split, scorer), mean in means.items():
        values = mean + noise * rng.standard_normal(seeds)
        rows += [((split, scorer, str(k)), v) for k, v in enumerate(values)] + [((split, scorer, "all"), values.mean())]
    frame = board({("ood", split, scorer, "auroc"): 0.0 for (split, scorer) in means}, **keys)
    frame = pd.concat([frame.assign(seed=seed_, split=split, scorer=scorer, full_spec=FULL.get(scorer, scorer), value=value)
                       .iloc[:1] for (split, scorer, seed_), value in rows], ignore_index=True)
    return frame


SPLITS = {(f"noise{k}", "vog"): 0.8 for k in range(10)}


def test_the_gate_passes_seed_noise_and_fails_a_regression_beyond_it():
    a, rerun = seeded(SPLITS, 0.02, seed=0), seeded(SPLITS, 0.02, seed=1)  # the same method, other seeds
    assert not compare(a, rerun, {"auroc": 0.0}, alpha=1.0).drops.empty  # raw: some row is always lower
    assert compare(a, rerun, {"auroc": 0.0}).drops.empty  # noise-aware: none is beyond the noise
    worse = seeded({**SPLITS, ("noise3", "vog"): 0.70}, 0.02, seed=1)
    drops = compare(a, worse, {"auroc": 0.0}).drops
    assert list(drops.split) == ["noise3"] and drops.p_adjusted.iloc[0] < 0.05
    assert compare(a, worse, {"auroc": 0.2}).drops.empty  # significant, but within the tolerance


def test_with_one_seed_the_gate_reads_the_intervals():
    base = {("ood", "mean", "vog", "auroc"): 0.80, ("ood", "mean", "vog", "auroc_ci_low"): 0.78,
            ("ood", "mean", "vog", "auroc_ci_high"): 0.82}
    near = {**base, ("ood", "mean", "vog", "auroc"): 0.79}
    far = {**base, ("ood", "mean", "vog", "auroc"): 0.70, ("ood", "mean", "vog", "auroc_ci_low"): 0.68,
           ("ood", "mean", "vog", "auroc_ci_high"): 0.72}
    assert compare(board(base), board(near), {"auroc": 0.0}).drops.empty
    result = compare(board(base), board(far), {"auroc": 0.0})
    error = np.hypot(0.02, 0.02) / 1.959964
    expected = 2 * (1 - __import__("scipy").stats.norm.cdf(0.10 / error))
    assert result.joined.set_index(["metric"]).p["auroc"] == pytest.approx(expected)
    assert list(result.drops.metric) == ["auroc"]


def test_show_ranks_orders_scorers_by_their_average_rank_over_splits_with_the_seeds_averaged(tmp_path, capsys):
    means = {**{(f"noise{k}", "good"): 0.9 for k in range(6)}, **{(f"noise{k}", "fair"): 0.8 for k in range(6)},
             **{(f"noise{k}", "poor"): 0.6 for k in range(6)}}
    path = write(tmp_path, "ranked.csv", seeded(means, 0.01, seeds=3))
    assert main(["show", str(path), "--ranks"]) == 0
    out = capsys.readouterr().out
    assert "average rank over 6 blocks (OoD splits, each the mean over 3 seeds)" in out
    lines = [line.split() for line in out.splitlines() if line.split()[:1] in (["good"], ["fair"], ["poor"])]
    assert [(name, float(rank)) for name, rank, *_ in lines] == [("good", 1.0), ("fair", 2.0), ("poor", 3.0)]
    # Nemenyi (Demsar 2006): q_0.05 = 2.343 for 3 scorers, CD = 2.343 sqrt(3 * 4 / (6 * 6)) = 1.35: only `poor`,
    # two ranks behind, is told apart from `good`
    assert "Nemenyi critical difference 1.35" in out and float(lines[1][2]) > 0.05 and float(lines[2][2]) < 0.05
    assert main(["show", str(write(tmp_path, "means.csv", board(BASE))), "--ranks"]) == 2
    assert "nothing to rank" in capsys.readouterr().err


def test_a_scorer_whose_seeds_agree_is_judged_by_its_bootstrap_interval_not_by_zero_noise():
    def free(value, low, high, seeds=3):
        rows = {("ood", "blur", "kde", "auroc"): value, ("ood", "blur", "kde", "auroc_ci_low"): low,
                ("ood", "blur", "kde", "auroc_ci_high"): high}
        frame = board(rows)
        per_seed = frame[frame.metric == "auroc"]
        return pd.concat([frame, *[per_seed.assign(seed=str(k)) for k in range(seeds)]], ignore_index=True)

    a, moved = free(0.900, 0.88, 0.92), free(0.899, 0.88, 0.92)  # every seed the same value: no seed noise
    result = compare(a, moved, {"auroc": 0.0})
    assert result.drops.empty and result.joined.query("seed == 'all' and metric == 'auroc'").p.iloc[0] > 0.9
    assert not compare(a, free(0.80, 0.78, 0.82), {"auroc": 0.0}).drops.empty
    old = free(0.900, 0.88, 0.92)
    old = old.assign(ci_low=np.nan, ci_high=np.nan)  # a file of bench < 0.4: the other file's interval stands for both
    assert compare(old, moved, {"auroc": 0.0}).drops.empty and not compare(old, free(0.8, 0.78, 0.82), {"auroc": 0.0}).drops.empty


def test_show_states_what_digits_c_pixel_detector_rows_do_not_measure(capsys):
    """The committed digits-c leaderboard is shown with its caveat (its clean images span 61 of 784 pixel
    dimensions); a dataset without one, MNIST-C, is shown without."""
    root = Path(__file__).resolve().parents[1] / "leaderboards"
    assert main(["show", str(root / "digits-c.csv.gz"), "--task", "ood"]) == 0
    assert "caveat: digits-c's clean images" in capsys.readouterr().out
    assert main(["show", str(root / "mnist-c.csv.gz"), "--task", "ood"]) == 0
    assert "caveat" not in capsys.readouterr().out


def test_vog_default_is_chosen_without_seeing_the_corruptions_it_is_judged_on(capsys):
    """examples/choose_vog_default.py: the choosing and judging corruptions partition MNIST-C's 15, and making
    another variant perfect on the judging half does not change the choice, while on the choosing half it does;
    run as the README runs it, it names the default it chose."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "examples" / "choose_vog_default.py"
    spec = importlib.util.spec_from_file_location("choose_vog_default", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert sorted(module.CHOOSING + module.JUDGING) == sorted(module.CORRUPTIONS) and not set(module.CHOOSING) & set(module.JUDGING)
    board = read_csv(module.STUDY)
    chosen, _ = module.choose(board)
    rival = module.PAPER
    judged = board.copy()
    judged.loc[(judged.full_spec == rival) & judged.split.isin(module.JUDGING) & (judged.metric == "auroc"), "value"] = 1.0
    assert module.choose(judged)[0] == chosen != rival
    judged.loc[(judged.full_spec == rival) & judged.split.isin(module.CHOOSING) & (judged.metric == "auroc"), "value"] = 1.0
    assert module.choose(judged)[0] == rival
    module.main()
    assert f"variants; chosen: {module.DEFAULT}" in capsys.readouterr().out


def test_show_on_a_leaderboard_without_intervals_says_it_has_none(tmp_path, capsys):
    """`bench show` on a committed 0.2.0 leaderboard announced 95% intervals and printed none."""
    old = board({key: value for key, value in BASE.items() if "_ci_" not in key[3]})
    assert main(["show", str(write(tmp_path, "old.csv", old))]) == 0
    out = capsys.readouterr().out
    assert "no intervals: this leaderboard was written by bench 0.1.0" in out and "95% intervals" not in out
    assert "[" not in out.split("AUROC")[1].split("\n\n")[1]  # the table's cells have no brackets


def test_show_by_family_groups_the_rows_in_family_order_best_first_within_each(capsys):
    """On the committed digits-c leaderboard: the family column follows FAMILIES' order, each scorer's family
    is its class's (a detector's by its feature space), and within a family the AUROC column is sorted as
    pandas sorts it."""
    from bench.registry import family_of
    from bench.schema import FAMILIES
    from bench.tables import task_summary

    board = read_csv(Path(__file__).resolve().parents[1] / "leaderboards" / "digits-c.csv.gz")
    board = board[board.task.isin({"ood", "cost"})]
    families = {scorer: family_of(scorer) for scorer in set(board.scorer)}
    assert families["vog[window=early]"] == "gradient" and families["kde"] == "pixel-space"
    assert families["gaussian"] == "feature-based" and families["max-softmax"] == "output-based"
    assert family_of("kde[features=embedding]") == "feature-based" and family_of("no-such-scorer") == "other"
    table, _ = task_summary(board, "ood", families)
    ranks = [FAMILIES.index(family) for family in table.family]
    assert ranks == sorted(ranks) and len(set(ranks)) == 5
    auroc = board[(board.task == "ood") & (board.seed == "all") & (board.metric == "auroc") & (board.split == "mean")]
    auroc = auroc.set_index("scorer").value
    assert len(auroc) == len(table)
    for family, rows in table.groupby("family", sort=False):
        values = auroc.reindex(rows.index).dropna()
        assert list(values) == sorted(values, reverse=True), family
    assert main(["show", str(Path(__file__).resolve().parents[1] / "leaderboards" / "digits-c.csv.gz"), "--task", "ood",
                 "--by-family"]) == 0
    assert "feature-based" in capsys.readouterr().out
