"""Leaderboard CSVs: tidy rows, one measurement each, with the provenance of the run.

Columns (documented in ``leaderboards/README.md``):
``dataset, model, task, split, scorer, label_mode, seed, metric, value, note`` then
``bench_version, git_sha, config_hash, torch_version, device, created_at``.
``seed`` is ``all`` on rows aggregated over seeds; ``note`` says why a value is NaN.
"""

from __future__ import annotations

import datetime
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

import bench
from bench.errors import BenchError
from bench.results import ScoreTable, write_atomically

if TYPE_CHECKING:
    import torch

KEYS = ["dataset", "model", "task", "split", "scorer", "label_mode", "seed", "metric"]
MEASUREMENT = ["value", "note"]
PROVENANCE = ["bench_version", "git_sha", "config_hash", "torch_version", "device", "created_at"]
COLUMNS = KEYS + MEASUREMENT + PROVENANCE


def git_sha() -> str:
    """The commit of the harness's own checkout, ``+dirty`` with uncommitted changes; ``unknown`` if not a checkout."""
    root = Path(bench.__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}+dirty" if dirty else sha


def device_name(device: torch.device) -> str:
    import torch

    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()})"


def provenance(device: torch.device, config_hash: str, code: str) -> dict[str, str]:
    """Where a unit's scores come from; stored in its score table. ``code`` is the git SHA read when the run began."""
    import torch

    return {
        "bench_version": bench.__version__,
        "git_sha": code,
        "config_hash": config_hash,
        "torch_version": torch.__version__,
        "device": device_name(device),
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def attach_provenance(rows: pd.DataFrame, tables: list[ScoreTable]) -> pd.DataFrame:
    """Give each row the provenance of its unit; rows over all seeds get the values the units share."""
    by_seed = {str(t.meta["seed"]): t.meta["provenance"] for t in tables}
    combined = {
        key: "; ".join(sorted({p[key] for p in by_seed.values()})) for key in PROVENANCE
    }
    board = rows.copy()
    for key in PROVENANCE:
        board[key] = [by_seed.get(seed, combined)[key] for seed in board["seed"]]
    return board[COLUMNS].reset_index(drop=True)


def write_csv(board: pd.DataFrame, path: Path) -> None:
    write_atomically(path, lambda temporary: board.to_csv(temporary, index=False, float_format="%.6g"))


def read_csv(path: Path) -> pd.DataFrame:
    """A leaderboard CSV as written by ``write_csv``, plain or gzipped (``.csv.gz``); a clear error for a file that is not one."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"no leaderboard at {path}; `bench run` writes one as <out>/leaderboard.csv")
    try:
        board = pd.read_csv(path, dtype={**dict.fromkeys(KEYS, str), "note": str}, keep_default_na=False,
                            na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, EOFError, OSError) as error:
        raise BenchError(f"{path} is not a readable CSV ({error}); is it a leaderboard written by `bench run`?") from None
    missing = [column for column in KEYS + ["value"] if column not in board.columns]
    if missing:
        raise BenchError(f"{path} is not a bench leaderboard: it has no column {', '.join(missing)} "
                         f"(see leaderboards/README.md for the schema)")
    board["note"] = board["note"].fillna("") if "note" in board else ""
    return board


def text_table(frame: pd.DataFrame) -> str:
    """Left-aligned columns separated by two spaces, with a header rule: readable in any terminal."""
    cells = [list(map(str, frame.columns))] + [[str(v) for v in row] for row in frame.itertuples(index=False)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(frame.columns))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


@dataclass(frozen=True)
class Headline:
    """A metric shown in summaries and checked by ``compare``: where it lives and which way is better."""

    task: str
    split: str
    metric: str
    header: str
    better: int  # +1: higher is better, -1: lower is better
    std: str = ""  # suffix of the metric shown after ±
    spread: str = ""  # suffix of the metric shown in brackets
    integer: bool = False


HEADLINES = [
    Headline("ood", "mean", "auroc", "AUROC", +1, "std_corruptions", "std_seeds"),
    Headline("ood", "mean", "aupr_in", "AUPR-In", +1, "std_corruptions", "std_seeds"),
    Headline("ood", "mean", "aupr_out", "AUPR-Out", +1, "std_corruptions", "std_seeds"),
    Headline("ood", "mean", "fpr95", "FPR@95", -1, "std_corruptions", "std_seeds"),
    Headline("mislabel", "train", "auroc", "AUROC", +1, "std_seeds"),
    Headline("mislabel", "train", "ap", "AP", +1, "std_seeds"),
    Headline("mislabel", "train", "precision_at_k", "P@k", +1, "std_seeds"),
    Headline("mislabel", "train", "welch_p", "Welch p", -1),
    Headline("difficulty", "test", "error_auroc", "error AUROC", +1, "std_seeds"),
    Headline("difficulty", "test", "error_ratio", "top/bottom error", +1, "std_seeds"),
    Headline("difficulty", "test", "early_late_flip", "early/late flip", +1),
    Headline("consistency", "test", "split_half", "split-half test", +1),
    Headline("consistency", "test", "runs_for_0.9", "seeds for 0.9 test", -1, integer=True),
    Headline("consistency", "train", "split_half", "split-half train", +1),
    Headline("consistency", "train", "runs_for_0.9", "seeds for 0.9 train", -1, integer=True),
]
BETTER = {h.metric: h.better for h in HEADLINES}
CAPTIONS = {
    "ood": "OoD detection, clean test vs each corruption: mean ± std over corruptions (std over seeds)",
    "mislabel": "Mislabel detection on the training split, shuffled labels positive: mean ± std over seeds",
    "difficulty": "Test error by score: AUROC for the misclassified examples, top/bottom decile error; over seeds",
    "consistency": "Agreement between seeds: Spearman of seed-averaged halves, and seeds to average for 0.9\n"
                   "(scorers that do not use the trained model, such as detectors on pixels, agree perfectly)",
}
PROTOCOL = ["dataset", "model", "label_mode"]


def _cell(mean: float, std: float = np.nan, spread: float = np.nan, integer: bool = False) -> str:
    if np.isnan(mean) or np.isinf(mean):
        return str(mean)
    if integer:
        text = f"{mean:.0f}"
    else:
        text = f"{mean:.3g}" if abs(mean) < 1e-3 and mean != 0 else f"{mean:.3f}"
    if not np.isnan(std):
        text += f" ± {std:.3f}"
    if not np.isnan(spread):
        text += f" ({spread:.3f})"
    return text


def task_summary(board: pd.DataFrame, task: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """Scorer x headline metrics of one task (over seeds), best first; and why NaN cells are NaN."""
    headlines = [h for h in HEADLINES if h.task == task]
    rows = board[(board.task == task) & (board.seed == "all")]
    lookup = {(r.split, r.scorer, r.metric): (r.value, r.note) for r in rows.itertuples()}

    def value(h: Headline, scorer: str, suffix: str = "") -> float:
        return lookup.get((h.split, scorer, f"{h.metric}_{suffix}" if suffix else h.metric), (np.nan, ""))[0]

    def cell(h: Headline, scorer: str) -> str:
        if (h.split, scorer, h.metric) not in lookup:
            return ""
        std = value(h, scorer, h.std) if h.std else np.nan
        spread = value(h, scorer, h.spread) if h.spread else np.nan
        return _cell(value(h, scorer), std, spread, h.integer)

    scorers = [s for s in dict.fromkeys(rows.scorer) if any((h.split, s, h.metric) in lookup for h in headlines)]
    first = pd.Series([value(headlines[0], s) for s in scorers], index=scorers, dtype=float)
    scorers = list(first.sort_values(ascending=headlines[0].better < 0, na_position="last", kind="stable").index)
    table = pd.DataFrame({h.header: [cell(h, s) for s in scorers] for h in headlines},
                         index=pd.Index(scorers, name="scorer"))
    reasons = {}
    for s in scorers:
        for h in headlines:
            mean, note = lookup.get((h.split, s, h.metric), (0.0, ""))
            if np.isnan(mean) and note:
                reasons.setdefault(s, note)
    return table, reasons


def ood_by_corruption(board: pd.DataFrame, metric: str = "auroc") -> pd.DataFrame:
    """Scorer x corruption table of one metric, averaged over seeds."""
    rows = board[(board.task == "ood") & (board.seed == "all") & (board.split != "mean") & (board.metric == metric)]
    table = rows.pivot_table(index="scorer", columns="split", values="value", dropna=False, aggfunc="first")
    order = list(dict.fromkeys(rows.split))
    return table[order].map(lambda v: f"{v:.3f}")


def render(board: pd.DataFrame) -> str:
    """Every task's summary table per protocol (dataset, model, label mode), as text."""
    parts = []
    for protocol, rows in board.groupby(PROTOCOL, sort=False):
        parts.append("== " + " / ".join(map(str, protocol)) + " ==")
        for task, caption in CAPTIONS.items():
            if not (rows.task == task).any():
                continue
            table, reasons = task_summary(rows, task)
            parts += ["", f"{task}: {caption}", "", text_table(table.reset_index())]
            parts += [f"  {scorer}: nan because {reason}" for scorer, reason in reasons.items()]
            if task == "ood":
                by_split = ood_by_corruption(rows).reindex([s for s in table.index if s in set(rows.scorer)])
                parts += ["", "ood: AUROC by corruption (mean over seeds)", "", text_table(by_split.reset_index())]
        parts.append("")
    return "\n".join(parts)


@dataclass
class Comparison:
    joined: pd.DataFrame  # keys, then value_a, value_b, delta
    only_a: list[tuple]  # protocols measured in A alone
    only_b: list[tuple]
    drops: pd.DataFrame  # joined rows that got worse by more than their tolerance


def parse_tolerances(items: list[str]) -> dict[str, float]:
    """``["auroc=0.01", "fpr95=0.02"]`` -> {metric: tolerance}, for metrics with a better direction."""
    tolerances = {}
    for item in items:
        metric, sep, tolerance = item.partition("=")
        if metric not in BETTER:
            raise BenchError(f"--fail-if-drops {item!r}: {metric!r} has no better direction to drop from; "
                             f"use one of {', '.join(sorted(BETTER))}")
        try:
            tolerances[metric] = float(tolerance) if sep else 0.0
        except ValueError:
            raise BenchError(f"--fail-if-drops {item!r}: the tolerance must be a number, as in auroc=0.01") from None
    return tolerances


def compare(a: pd.DataFrame, b: pd.DataFrame, tolerances: dict[str, float]) -> Comparison:
    """Join two leaderboards on their keys, protocol by protocol; a protocol measured by one only is reported.

    ``drops`` holds the rows over all seeds whose metric (a key of ``tolerances``) got worse
    by more than the tolerance, or became NaN.
    """
    protocols_a = set(a[PROTOCOL].itertuples(index=False, name=None))
    protocols_b = set(b[PROTOCOL].itertuples(index=False, name=None))
    if not protocols_a & protocols_b:
        raise BenchError(
            f"the leaderboards measure different protocols (dataset, model, label mode): A has {sorted(protocols_a)}, "
            f"B has {sorted(protocols_b)}; nothing is comparable, so nothing was joined"
        )
    joined = a[KEYS + ["value"]].merge(b[KEYS + ["value"]], on=KEYS, suffixes=("_a", "_b"))
    joined["delta"] = joined.value_b - joined.value_a
    checked = joined[(joined.seed == "all") & joined.metric.isin(list(tolerances))]
    direction = checked.metric.map(BETTER)
    tolerance = checked.metric.map(tolerances)
    worse = (checked.delta * direction < -tolerance) | (checked.value_a.notna() & checked.value_b.isna())
    return Comparison(joined, sorted(protocols_a - protocols_b), sorted(protocols_b - protocols_a), checked[worse])


def merge(boards: list[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    """Stack leaderboards ((name, board) pairs) into one, e.g. the runs of one study in two label modes.

    A measurement present in two of them (the same keys) is refused: the merged file must hold
    one value per key, and which of the two is meant cannot be guessed.
    """
    stacked = pd.concat([board.assign(_source=name) for name, board in boards], ignore_index=True)
    repeated = stacked[stacked.duplicated(KEYS, keep=False)]
    if not repeated.empty:
        first = repeated.iloc[0]
        sources = sorted(set(repeated[(repeated[KEYS] == first[KEYS]).all(axis=1)]._source))
        raise BenchError(
            f"{len(repeated.drop_duplicates(KEYS))} measurements are in more than one file, e.g. "
            f"{' / '.join(str(first[k]) for k in KEYS)} in {' and '.join(sources)}; merge leaderboards of "
            "different protocols or scorers only (`bench compare` joins the same rows)"
        )
    return stacked.drop(columns="_source")


def headline_rows(joined: pd.DataFrame) -> pd.DataFrame:
    """The rows of a join that summaries show: headline metrics over all seeds."""
    wanted = pd.DataFrame([(h.task, h.split, h.metric) for h in HEADLINES], columns=["task", "split", "metric"])
    return joined[joined.seed == "all"].merge(wanted, on=["task", "split", "metric"])
