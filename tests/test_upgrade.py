"""Leaderboards of bench 0.2-0.6 (statistics as suffixed rows) read in today's columns, values unchanged.

The committed files were converted; their old layout is read from git at ec3c308, the last commit
before the conversion, so the test checks the upgrade against the files as the old versions wrote
them, and the conversion for each committed file not regenerated since.
"""

import math
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench.errors import BenchError
from bench.leaderboard import read_csv, write_csv
from bench.schema import BOOTSTRAP, COLUMNS, T_SEEDS

ROOT = Path(__file__).resolve().parent.parent
OLD_LAYOUT = "ec3c308"  # the last commit whose committed leaderboards have statistics rows
FILES = sorted(path.name for path in (ROOT / "leaderboards").glob("*.csv.gz"))
SUFFIXES = {"_std_seeds": "std_seeds", "_ci_low": "ci_low", "_ci_high": "ci_high", "_std_corruptions": "std_splits"}


def old_file(name: str, tmp_path: Path) -> Path:
    """The committed leaderboard ``name`` as it was before the conversion, from git."""
    shown = subprocess.run(["git", "-C", str(ROOT), "show", f"{OLD_LAYOUT}:leaderboards/{name}"], capture_output=True)
    if shown.returncode:
        pytest.skip(f"no git history with {OLD_LAYOUT} here: {shown.stderr.decode().strip()}")
    path = tmp_path / name
    path.write_bytes(shown.stdout)
    return path


def same(a, b) -> bool:
    return (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)) or a == b


@pytest.mark.parametrize("name", FILES)
def test_every_old_row_is_a_cell_of_the_upgraded_file_and_the_conversion_kept_them(name, tmp_path):
    path = old_file(name, tmp_path)
    old = pd.read_csv(path, dtype=str, keep_default_na=False)
    upgraded = read_csv(path)
    assert list(upgraded.columns[:len(COLUMNS)]) == COLUMNS
    cells = {}
    for row in upgraded.itertuples(index=False):
        key = (row.task, row.split, row.scorer, row.vs_scorer, row.label_mode, row.seed, row.metric, row.dataset)
        assert key not in cells
        cells[key] = row._asdict()
    checked = 0
    for row in old.itertuples(index=False):
        metric, column = row.metric, "value"
        for suffix, name_ in SUFFIXES.items():
            if metric.endswith(suffix):
                metric, column = metric.removesuffix(suffix), name_
        scorer, _, vs_scorer = row.scorer.partition(" vs ")
        if metric.startswith("spearman_with:"):
            metric, vs_scorer = "spearman_with", metric.removeprefix("spearman_with:")
        cell = cells[(row.task, row.split, scorer, vs_scorer, row.label_mode, row.seed, metric, row.dataset)]
        assert same(float(row.value) if row.value else np.nan, float(cell[column])), (row, column, cell[column])
        if column == "value":
            assert cell["note"].startswith(row.note) and cell["git_sha"] == row.git_sha
        checked += 1
    assert checked == len(old)
    assert len(upgraded) == (~old.metric.str.endswith(tuple(SUFFIXES))).sum()
    converted = read_csv(ROOT / "leaderboards" / name)
    if set(converted["bench_version"]) == set(old["bench_version"]):  # still the conversion, not a file made since
        pd.testing.assert_frame_equal(converted, upgraded, check_exact=True)


def old_board(values: dict[str, list[float]], ci: tuple[float, float], version: str = "0.6.0") -> pd.DataFrame:
    """An old-layout board: per-seed rows of ``auroc`` and its row over seeds with a std and ``ci``."""
    rows = [{"seed": str(seed), "metric": "auroc", "value": v, "note": ""} for seed, v in enumerate(values)]
    mean, std = float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else np.nan
    rows += [{"seed": "all", "metric": "auroc", "value": mean, "note": ""},
             {"seed": "all", "metric": "auroc_std_seeds", "value": std, "note": "one seed" if np.isnan(std) else ""},
             {"seed": "all", "metric": "auroc_ci_low", "value": ci[0], "note": ""},
             {"seed": "all", "metric": "auroc_ci_high", "value": ci[1], "note": ""}]
    frame = pd.DataFrame(rows).assign(dataset="d", model="m", task="ood", split="blur", scorer="s", full_spec="s[x=1]",
                                      label_mode="predicted", bench_version=version, git_sha="abc", config_hash="1",
                                      torch_version="2", device="cpu", created_at="now")
    return frame[[c for c in COLUMNS if c in frame.columns]]


def test_the_upgrade_says_which_interval_an_old_file_had(tmp_path):
    values = [0.6, 0.7, 0.8]
    half = stats.t.ppf(0.975, 2) * np.std(values, ddof=1) / np.sqrt(3)  # the t-interval, by hand
    path = tmp_path / "t.csv"
    old_board(values, (0.7 - half, 0.7 + half)).to_csv(path, index=False)
    row = read_csv(path).query("seed == 'all'").iloc[0]
    assert (row.interval, row.n_seeds, row.std_seeds) == (T_SEEDS, 3, pytest.approx(0.1))
    old_board([0.7], (0.65, 0.75)).to_csv(path, index=False)  # one seed: only a bootstrap gives an interval
    row = read_csv(path).query("seed == 'all'").iloc[0]
    assert (row.interval, row.n_seeds, row.ci_low, row.note) == (BOOTSTRAP, 1, 0.65, "one seed")
    assert np.isnan(row.std_seeds) and np.isnan(row.std_splits)


def test_a_file_of_the_old_layout_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "edited.csv"
    old_board([0.6, 0.8], (0.5, 0.9), version="0.7.0").to_csv(path, index=False)
    with pytest.raises(BenchError, match="no `ci_low` column"):
        read_csv(path)


def test_a_file_in_todays_layout_reads_back_unchanged(tmp_path):
    path = tmp_path / "old.csv"
    old_board([0.6, 0.8], (0.5, 0.9)).to_csv(path, index=False)
    upgraded = read_csv(path)
    write_csv(upgraded, tmp_path / "new.csv")
    pd.testing.assert_frame_equal(read_csv(tmp_path / "new.csv"), upgraded)
