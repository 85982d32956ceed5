"""The harness's post-hoc OoD detectors on CIFAR-10 beside OpenOOD v1.5's published numbers, in one command:

    python docs/openood.py                                  # from the project root: leaderboards/cifar10.csv.gz
    python docs/openood.py results/cifar10-cpu/leaderboard.csv

prints a markdown table (near- and far-OoD AUROC per method, the harness's mean over seeds with its
95% interval beside OpenOOD's mean ± std over its 3 runs) and, for near and far, Spearman's
correlation between the two orderings of the methods with a 95% bootstrap interval over methods
(``bench.stats.spearman_bootstrap_interval``): how far the harness ranks the detectors as OpenOOD does.

OpenOOD's numbers are its v1.5 leaderboard for CIFAR-10 (``results/cifar10.csv`` at f969dfa, ResNet-18
trained 100 epochs, 95.06% accuracy), as ``../shared/reference/ood-anchors.md`` (section 1.2) records
them. Its near-OoD is the mean over CIFAR-100 and TinyImageNet, its far-OoD over MNIST, SVHN, Textures
and Places365; the harness's `mean:near` and `mean:far` are over the OoD sets the run had.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from bench.leaderboard import read_csv
from bench.stats import spearman_along, spearman_bootstrap_interval

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "leaderboards" / "cifar10.csv.gz"

# harness scorer -> (OpenOOD method, near AUROC %, its std, far AUROC %, its std)
OPENOOD = {
    "max-softmax": ("MSP", 88.03, 0.25, 90.73, 0.43),
    "temp-scaling": ("TempScale", 88.09, 0.31, 90.97, 0.52),
    "odin": ("ODIN", 82.87, 1.85, 87.96, 0.61),
    "mds": ("MDS", 84.20, 2.40, 89.72, 1.36),
    "rmds": ("RMDS", 89.80, 0.28, 92.20, 0.21),
    "energy": ("EBO", 87.58, 0.46, 91.21, 0.92),
    "gradnorm": ("GradNorm", 54.90, 0.98, 57.55, 3.22),
    "react": ("ReAct", 87.11, 0.61, 90.42, 1.41),
    "max-logit": ("MLS", 87.52, 0.47, 91.10, 0.89),
    "vim": ("VIM", 88.68, 0.28, 93.48, 0.24),
    "knn": ("KNN", 90.64, 0.20, 92.96, 0.14),
    "dice": ("DICE", 78.34, 0.79, 84.23, 1.89),
    "ash": ("ASH", 75.27, 1.04, 78.49, 2.58),
    "gen": ("GEN", 88.20, 0.30, 91.35, 0.69),
}
KINDS = ("near", "far")


def harness_aurocs(board: pd.DataFrame) -> pd.DataFrame:
    """Per OpenOOD method the harness has, its seed-mean AUROC (%) and interval for near and far OoD."""
    rows = board[(board.task == "ood") & (board.metric == "auroc") & (board.seed == "all")
                 & (board.label_mode == "predicted") & board.split.isin([f"mean:{kind}" for kind in KINDS])
                 & board.scorer.isin(list(OPENOOD))]
    table = {}
    for row in rows.itertuples():
        kind = row.split.split(":")[1]
        table.setdefault(row.scorer, {}).update({kind: 100 * row.value, f"{kind}_low": 100 * row.ci_low,
                                                 f"{kind}_high": 100 * row.ci_high})
    return pd.DataFrame.from_dict(table, orient="index")


def agreement(ours: pd.Series, theirs: pd.Series) -> tuple[float, float, float]:
    """Spearman's correlation of two orderings of the same methods, and its 95% bootstrap interval over methods."""
    x, y = ours.to_numpy(float), theirs.to_numpy(float)
    return float(spearman_along(x, y)), *spearman_bootstrap_interval(x, y)


def comparison(board: pd.DataFrame) -> str:
    ours = harness_aurocs(board)
    if ours.empty:
        raise SystemExit("no near/far OoD AUROC rows of OpenOOD's methods in the leaderboard: run the cifar10-cpu "
                         "preset (bench run --preset cifar10-cpu), which scores CIFAR-100 (near) and MNIST (far)")
    lines = ["| method (harness) | OpenOOD near | harness near [95%] | OpenOOD far | harness far [95%] |",
             "|---|---|---|---|---|"]
    for scorer in sorted(ours.index, key=lambda s: -OPENOOD[s][1]):
        name, near, near_std, far, far_std = OPENOOD[scorer]
        cells = [f"{ours.at[scorer, kind]:.2f} [{ours.at[scorer, f'{kind}_low']:.2f}, "
                 f"{ours.at[scorer, f'{kind}_high']:.2f}]" if kind in ours else "" for kind in KINDS]
        lines.append(f"| {name} (`{scorer}`) | {near:.2f} ± {near_std:.2f} | {cells[0]} | {far:.2f} ± {far_std:.2f} "
                     f"| {cells[1]} |")
    lines.append("")
    for index, kind in ((1, "near"), (3, "far")):
        if kind not in ours or ours[kind].isna().all():
            continue
        present = ours[kind].dropna()
        theirs = pd.Series({scorer: OPENOOD[scorer][index] for scorer in present.index})
        rho, low, high = agreement(present, theirs)
        lines.append(f"Spearman of the two orderings, {kind}-OoD, {len(present)} methods: {rho:.2f} "
                     f"[{low:.2f}, {high:.2f}] (95% bootstrap over methods)")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    path = Path(argv[0]) if argv else DEFAULT
    print(comparison(read_csv(path)))


if __name__ == "__main__":
    main(sys.argv[1:])
