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
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import bench
from bench.results import ScoreTable, write_atomically

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
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()})"


def provenance(device: torch.device, config_hash: str, code: str) -> dict[str, str]:
    """Where a unit's scores come from; stored in its score table. ``code`` is the git SHA read when the run began."""
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
    return pd.read_csv(path, dtype={"seed": str, "note": str}, keep_default_na=False, na_values=[""])


def _cell(mean: float, std: float | None = None, spread: float | None = None) -> str:
    if np.isnan(mean):
        return "nan"
    text = f"{mean:.3f}"
    if std is not None and not np.isnan(std):
        text += f" ± {std:.3f}"
    if spread is not None and not np.isnan(spread):
        text += f" ({spread:.3f})"
    return text


OOD_HEADERS = {"auroc": "AUROC", "aupr_in": "AUPR-In", "aupr_out": "AUPR-Out", "fpr95": "FPR@95"}


def ood_summary(board: pd.DataFrame) -> pd.DataFrame:
    """One row per scorer: each OoD metric as mean ± std over corruptions (std over seeds)."""
    overall = board[(board.task == "ood") & (board.split == "mean") & (board.seed == "all")]
    values = overall.pivot_table(index="scorer", columns="metric", values="value", dropna=False, aggfunc="first")
    table = pd.DataFrame(index=values.index)
    for metric, header in OOD_HEADERS.items():
        table[header] = [
            _cell(row[metric], row.get(f"{metric}_std_corruptions"), row.get(f"{metric}_std_seeds"))
            for _, row in values.iterrows()
        ]
    return table.loc[values["auroc"].sort_values(ascending=False, na_position="last").index]


def ood_by_corruption(board: pd.DataFrame, metric: str = "auroc") -> pd.DataFrame:
    """Scorer x corruption table of one metric, averaged over seeds."""
    rows = board[(board.task == "ood") & (board.seed == "all") & (board.split != "mean") & (board.metric == metric)]
    table = rows.pivot_table(index="scorer", columns="split", values="value", dropna=False, aggfunc="first")
    order = list(dict.fromkeys(rows.split))
    return table[order].map(lambda v: f"{v:.3f}")


def ood_unmeasured(board: pd.DataFrame) -> dict[str, str]:
    """Scorers whose mean AUROC is NaN, with the reason."""
    overall = board[(board.task == "ood") & (board.split == "mean") & (board.seed == "all") & (board.metric == "auroc")]
    return {row.scorer: row.note for row in overall.itertuples() if np.isnan(row.value)}
