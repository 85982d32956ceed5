"""`bench show` and `bench compare` on small hand-written leaderboards."""

import numpy as np
import pandas as pd
import pytest

from bench.cli import main
from bench.errors import BenchError
from bench.leaderboard import COLUMNS, compare, parse_tolerances, read_csv, write_csv


def board(values, dataset="mnist-c", label_mode="predicted"):
    """A leaderboard with the given {(task, split, scorer, metric): value} rows over all seeds."""
    rows = [{"dataset": dataset, "model": "lenet", "task": task, "split": split, "scorer": scorer,
             "label_mode": label_mode, "seed": "all", "metric": metric, "value": value, "note": "",
             "bench_version": "0.1.0", "git_sha": "abc", "config_hash": "123", "torch_version": "2",
             "device": "cpu", "created_at": "2026-01-01T00:00:00+00:00"}
            for (task, split, scorer, metric), value in values.items()]
    return pd.DataFrame(rows, columns=COLUMNS)


BASE = {("ood", "mean", "vog", "auroc"): 0.80, ("ood", "mean", "vog", "auroc_std_corruptions"): 0.10,
        ("ood", "mean", "vog", "auroc_std_seeds"): 0.02, ("ood", "mean", "vog", "fpr95"): 0.50,
        ("ood", "mean", "kde", "auroc"): 0.70, ("ood", "blur", "vog", "auroc"): 0.90,
        ("mislabel", "train", "loss", "auroc"): 0.95}


def write(tmp_path, name, frame):
    path = tmp_path / name
    write_csv(frame, path)
    return path


def test_compare_deltas_and_drops():
    changed = {**BASE, ("ood", "mean", "vog", "auroc"): 0.75, ("ood", "mean", "vog", "fpr95"): 0.45,
               ("ood", "mean", "kde", "auroc"): np.nan}
    result = compare(board(BASE), board(changed), parse_tolerances(["auroc=0.01", "fpr95=0.01"]))
    delta = result.joined.set_index(["split", "scorer", "metric"]).delta
    assert delta["mean", "vog", "auroc"] == pytest.approx(-0.05)
    assert delta["mean", "vog", "fpr95"] == pytest.approx(-0.05)  # lower FPR: better, not a drop
    assert delta["blur", "vog", "auroc"] == 0
    drops = set(zip(result.drops.scorer, result.drops.metric))
    assert drops == {("vog", "auroc"), ("kde", "auroc")}  # a value that became NaN is a drop too
    assert compare(board(BASE), board(changed), parse_tolerances(["fpr95=0"])).drops.empty


def test_compare_cli_exit_codes(tmp_path, capsys):
    a = write(tmp_path, "a.csv", board(BASE))
    b = write(tmp_path, "b.csv", board({**BASE, ("ood", "mean", "vog", "auroc"): 0.78}))
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "0.8000" in out and "0.7800" in out and "-0.0200" in out
    assert main(["compare", str(a), str(b), "--fail-if-drops", "auroc=0.05"]) == 0
    assert main(["compare", str(a), str(b), "--fail-if-drops", "auroc=0.01"]) == 1
    assert "1 rows got worse" in capsys.readouterr().out
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
    assert f"{len(BASE)} rows joined" in out


def test_show_prints_mean_std_and_spread(tmp_path, capsys):
    path = write(tmp_path, "a.csv", board(BASE))
    assert main(["show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "0.800 ± 0.100 (0.020)" in out and "mislabel:" in out
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
    assert len(merged) == 2 * len(BASE)
    for mode, path in (("predicted", predicted), ("true", oracle)):
        pd.testing.assert_frame_equal(merged[merged.label_mode == mode].reset_index(drop=True), read_csv(path))
    assert main(["merge", str(predicted), str(predicted), "--out", str(tmp_path / "twice.csv")]) == 2
    error = capsys.readouterr().err
    assert "7 measurements are in more than one file" in error and "predicted.csv" in error
    assert not (tmp_path / "twice.csv").exists()
