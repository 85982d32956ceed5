"""``bench report``: one self-contained HTML page of a results folder, with the papers' pictures.

Everything is drawn from the leaderboard and the score tables (read through ``bench.store``);
the images of the lowest- and highest-scored test examples, by the scorer that ranks the
misclassified test examples best, are read from the dataset the run used. Figures are PNGs inlined
as base64, so the file opens in any browser without a server.
"""

from __future__ import annotations

import base64
import functools
import html
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from bench.config import RunConfig, load_toml
from bench.data import Dataset, load_dataset, with_training_set
from bench.errors import BenchError
from bench.files import write_atomically
from bench.leaderboard import read_csv
from bench.schema import CAPTIONS, COST, PROTOCOL
from bench.store import ScoreTable, Store
from bench.tables import ood_by_corruption, task_summary
from bench.tasks.difficulty import DECILES

SECTIONS = {
    "summary": "Summary tables",
    "ranks": "Which scorer is better, and is it: ranks and paired tests",
    "cost": "What each score costs: quality against seconds, and the Pareto front",
    "ood-heatmap": "OoD: AUROC by scorer and corruption",
    "deciles": "Test error by score decile",
    "flip": "Early and late training: the flip of the VoG paper",
    "boundary": "Scores against the distance to the Bayes boundary: the VoG paper's Fig. 1",
    "correlations": "How far to trust a ranking: correlations",
    "extremes": "Lowest- and highest-scored test images per class",
}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1.5em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.2em 0.6em; text-align: left; white-space: nowrap; }
img { max-width: 100%; }
.note { color: #666; font-size: 0.9em; }
"""


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(figure) -> str:
    """The figure as an inline <img>; closes it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    _plt().close(figure)
    return f'<img src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def load_results(folder: Path) -> tuple[pd.DataFrame, list[ScoreTable], RunConfig]:
    """The leaderboard, the score tables it was computed from, and the run's settings."""
    folder = Path(folder)
    board = read_csv(folder / "leaderboard.csv")
    if not (folder / "config.toml").is_file():
        raise BenchError(f"{folder} has no config.toml; pass the --out folder of a `bench run`")
    config = load_toml(folder / "config.toml", RunConfig(name=folder.name)).updated(out=str(folder))
    return board, Store(folder).units_of(board), config


def summary_section(board: pd.DataFrame) -> str:
    parts = []
    for protocol, rows in board.groupby(PROTOCOL, sort=False):
        parts.append(f"<h3>{html.escape(' / '.join(map(str, protocol)))}</h3>")
        for task, caption in CAPTIONS.items():
            if (rows.task == task).any():
                table, reasons = task_summary(rows, task)
                parts += [f"<h4>{task}</h4>", _note(caption), table.to_html()]
                parts += [_note(f"{scorer}: nan because {reason}") for scorer, reason in reasons.items()]
    return "\n".join(parts)


def ranks_section(board: pd.DataFrame, tables: list[ScoreTable]) -> str:
    """Critical-difference diagrams of the Friedman ranks over independent blocks (``bench.ranking``: OoD
    splits averaged over seeds, or seeds), and DeLong's test of the best scorer against the next ones on the
    hardest OoD split (the one where the best scorer's AUROC is lowest)."""
    from bench.ranking import delong_against_best, ranking_caption, rankings
    from bench.stats import critical_difference_figure

    found = rankings(board)
    if not found:
        return _note("no measurement that two scorers share over seeds or OoD splits: nothing to rank")
    parts = []
    for key, ranking in found.items():
        parts += [_note(ranking_caption(key, ranking)), _png(critical_difference_figure(ranking.friedman))]
    ood_ranks = next((ranking.friedman for key, ranking in found.items() if key[-1] == "ood"), None)
    if ood_ranks is not None and tables and len(ood_ranks.average_ranks) > 1:
        order = list(ood_ranks.average_ranks.index[:6])
        per_split = board[(board.task == "ood") & (board.seed == "all") & (board.metric == "auroc")
                          & (board.scorer == order[0]) & ~board.split.str.startswith("mean")]
        if per_split.value.isna().all():
            return "\n".join(parts)
        hardest = per_split.loc[per_split.value.idxmin(), "split"]
        pairs = delong_against_best(tables, hardest, order)
        parts += [_note(f"DeLong's test (paired: the same examples) of {order[0]}, ranked best, against the next "
                        f"five on the split where its AUROC is lowest, {hardest}, per seed:"),
                  pairs.to_html(index=False, float_format=lambda v: f"{v:.3g}")]
    return "\n".join(parts)


COST_AXES = {("ood", "mean", "auroc"): "OoD AUROC (mean over OoD splits)",
             ("difficulty", "test", "error_auroc"): "error AUROC (misclassified test examples)"}


def cost_section(board: pd.DataFrame) -> str:
    """Per protocol, each quality of ``COST_AXES`` against each scorer's seconds per unit (mean over seeds),
    the scorers no other beats on both marked and joined."""
    from matplotlib.ticker import NullFormatter

    from bench.ranking import pareto_front

    means = board[board.seed == "all"]
    cost = means[(means.task == COST.task) & (means.metric == COST.metric)]
    if cost.value.notna().sum() == 0:
        return _note("no costs in this leaderboard (written by bench < 0.5, or no scorer ran)")
    plt = _plt()
    parts = [_note("Seconds per unit: the scorer's own work and its share of the probe's passes, mean over "
                   "seeds (training, which every model-based score needs, is not included). Filled and joined: "
                   "the Pareto front, scorers that no other beats on both quality and cost.")]
    for protocol, rows in means.groupby(PROTOCOL, sort=False):
        seconds = rows[(rows.task == COST.task) & (rows.metric == COST.metric)].set_index("scorer").value
        axes_found = [(key, label) for key, label in COST_AXES.items()
                      if ((rows.task == key[0]) & (rows.split == key[1]) & (rows.metric == key[2])
                          & rows.value.notna()).any()]
        if not axes_found or seconds.notna().sum() == 0:
            continue
        figure, axes = plt.subplots(1, len(axes_found), figsize=(6.5 * len(axes_found), 4.5), squeeze=False)
        for ax, ((task, split, metric), label) in zip(axes[0], axes_found):
            quality = rows[(rows.task == task) & (rows.split == split) & (rows.metric == metric)].set_index("scorer").value
            both = pd.DataFrame({"seconds": seconds, "quality": quality}).dropna()
            front = pareto_front(both.seconds.to_numpy(), both.quality.to_numpy())
            ax.scatter(both.seconds[~front], both.quality[~front], facecolors="none", edgecolors="grey")
            ax.scatter(both.seconds[front], both.quality[front], color="C3")
            ax.step(both.seconds[front].sort_values(), both.quality[front].sort_values(), where="post", color="C3")
            for scorer, point in both.iterrows():
                ax.annotate(scorer, (point.seconds, point.quality), fontsize=6, xytext=(3, 2), textcoords="offset points")
            ax.set(xscale="log", xlabel="seconds per unit (log scale)", ylabel=label, title=" / ".join(map(str, protocol)))
            ax.xaxis.set_minor_formatter(NullFormatter())
        parts.append(_png(figure))
    return "\n".join(parts)


def ood_heatmap_section(board: pd.DataFrame) -> str:
    import seaborn as sns

    table = ood_by_corruption(board).astype(float)
    if table.empty:
        return _note("no OoD splits in this run")
    table = table.loc[table.mean(axis=1).sort_values(ascending=False).index]
    figure, axes = _plt().subplots(figsize=(0.55 * table.shape[1] + 3, 0.32 * table.shape[0] + 1.5))
    sns.heatmap(table, annot=True, fmt=".2f", cmap="viridis", vmin=0, vmax=1, ax=axes, annot_kws={"size": 7},
                cbar_kws={"label": "AUROC (mean over seeds)"})
    axes.set(xlabel="corruption", ylabel="scorer")
    return _png(figure)


def decile_rows(board: pd.DataFrame) -> pd.DataFrame:
    """Per-seed test error by decile, with the decile as a number."""
    rows = board[(board.task == "difficulty") & (board.seed != "all") & board.metric.isin(DECILES)].copy()
    rows["decile"] = rows.metric.str[-2:].astype(int)
    return rows


def deciles_section(rows: pd.DataFrame) -> str:
    """``rows``: the per-seed decile rows of ``decile_rows``."""
    import seaborn as sns

    if rows.empty:
        return _note("no difficulty rows in this leaderboard")
    grid = sns.relplot(data=rows, x="decile", y="value", col="scorer", col_wrap=6, kind="line", marker="o",
                       errorbar="sd", height=1.9, aspect=1.2, facet_kws={"sharey": False})
    grid.set_titles("{col_name}", size=8).set_axis_labels("score decile (1 = lowest)", "test error")
    return _note("Mean over seeds, band = std over seeds. A score that finds hard examples rises to the right "
                 "(the VoG paper's Fig. 4).") + _png(grid.figure)


def flip_section(board: pd.DataFrame, rows: pd.DataFrame) -> str:
    """``rows``: the per-seed decile rows of ``decile_rows``."""
    flips = board[(board.metric == "early_late_flip") & (board.seed == "all")]
    pairs = list(zip(flips.scorer, flips.vs_scorer))
    if not pairs:
        return _note("needs two variants of a scorer that read early and late checkpoints, e.g. --scorers "
                     "vog,vog[window=early] (VoG's default window is late)")
    plt = _plt()
    figure, axes = plt.subplots(1, len(pairs), figsize=(5 * len(pairs), 3.2), squeeze=False)
    for ax, (early, late) in zip(axes[0], pairs):
        for spec, label in ((early, "early checkpoints"), (late, "late checkpoints")):
            curve = rows[rows.scorer == spec].groupby("decile").value.agg(["mean", "std"])
            ax.errorbar(curve.index, curve["mean"], yerr=curve["std"], marker="o", capsize=3, label=label)
        ax.set(title=f"{early} vs {late}", xlabel="score decile (1 = lowest)", ylabel="test error")
        ax.legend(fontsize=8)
    text = "; ".join(f"{r.scorer} vs {r.vs_scorer}: flips on {r.value:.0%} of seeds" for r in flips.itertuples())
    return _note("The paper (Figs. 5 and 8): early in training the top-VoG decile has the lowest error, late "
                 f"in training the highest. Here: {text}.") + _png(figure)


def mean_percentile_ranks(tables: list[ScoreTable], split: str, spec: str) -> np.ndarray:
    """Each example's percentile rank (0 to 1) by ``spec``'s score, averaged over the seeds."""
    from scipy.stats import rankdata

    return np.mean([rankdata(table.splits[split][spec]) / len(table.splits[split][spec]) for table in tables], axis=0)


def boundary_section(board: pd.DataFrame, tables: list[ScoreTable], dataset: Callable[[], Dataset]) -> str:
    """On data that knows its Bayes boundary: the training points in the plane coloured by score for the four
    scorers nearest to ranking by nearness, then every scorer's rank against the distance; ``dataset`` reads
    the run's data (for the points)."""
    from bench.tasks.boundary import COLUMN, METRIC, TASK

    means = board[(board.task == TASK) & (board.seed == "all") & (board.split == "train")].set_index("scorer")
    rho = means[means.metric == METRIC].value.dropna().sort_values(ascending=False)
    if rho.empty or not tables:
        return _note("needs data whose Bayes boundary is known, e.g. --preset toy-boundary (two-blobs)")
    low, high = (means[means.metric == METRIC][bound] for bound in ("ci_low", "ci_high"))
    title = {spec: f"{spec}\nρ {rho[spec]:.2f} [{low[spec]:.2f}, {high[spec]:.2f}]" for spec in rho.index}
    ranks = {spec: mean_percentile_ranks(tables, "train", spec) for spec in rho.index}
    distance = tables[0].splits["train"][COLUMN]
    plt = _plt()
    parts = [_note(f"Spearman of each score with the nearness to the boundary (minus the distance) on the training "
                   f"split, mean [95% interval] over {len(tables)} seeds. The paper (Fig. 1): VoG is highest for the "
                   "points nearest the decision boundary.")]
    try:
        train = dataset().train
        points = train.inputs.reshape(len(train), -1)
    except BenchError as error:
        points, parts = None, parts + [_note(f"the points could not be read: {error}")]
    if points is not None and points.shape[1] == 2 and np.array_equal(train.labels, tables[0].splits["train"]["label"]):
        shown = list(rho.index[:4])
        figure, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 3.6), squeeze=False)
        for ax, spec in zip(axes[0], shown):
            drawn = ax.scatter(points[:, 0], points[:, 1], c=ranks[spec], s=8, cmap="viridis")
            ax.axvline(0, color="k", lw=0.8)
            ax.set(xlabel="x0 (the Bayes boundary: x0 = 0)", aspect="equal")
            ax.set_title(title[spec], fontsize=8)
        axes[0, 0].set_ylabel("x1")
        figure.colorbar(drawn, ax=axes[0].tolist(), label="percentile rank of the score, mean over seeds")
        parts.append(_png(figure))
    columns = 6
    rows = -(-len(rho) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 2.4 * rows), squeeze=False, sharex=True,
                                sharey=True)
    for ax, spec in zip(axes.flat, rho.index):
        ax.scatter(distance, ranks[spec], s=2, alpha=0.5)
        ax.set_title(title[spec], fontsize=7)
    for ax in axes.flat[len(rho):]:
        ax.set_visible(False)
    figure.supxlabel("distance to the Bayes boundary")
    figure.supylabel("percentile rank of the score, mean over seeds")
    parts.append(_png(figure))
    return "\n".join(parts)


def correlations_section(board: pd.DataFrame) -> str:
    import seaborn as sns

    rows = board[(board.task == "consistency") & (board.metric == "spearman_with")]
    if rows.empty:
        return _note("no consistency rows in this leaderboard")
    parts = []
    plt = _plt()
    for split in dict.fromkeys(rows.split):
        matrix = rows[rows.split == split].pivot_table(index="scorer", columns="vs_scorer", values="value",
                                                       aggfunc="first")
        order = list(matrix.index)
        values = matrix.reindex(index=order, columns=order).to_numpy(copy=True)
        np.fill_diagonal(values, 1.0)
        matrix = pd.DataFrame(values, index=order, columns=order)
        figure, axes = plt.subplots(figsize=(0.4 * len(order) + 3, 0.35 * len(order) + 1.5))
        sns.heatmap(matrix, cmap="vlag", vmin=-1, vmax=1, annot=len(order) <= 30, fmt=".1f", annot_kws={"size": 6},
                    ax=axes, cbar_kws={"label": "Spearman (same seed, mean over seeds)"})
        axes.set(title=f"scorer against scorer, {split} split", xlabel="", ylabel="")
        parts.append(_png(figure))
    seeds = board[(board.task == "consistency") & board.metric.isin(["spearman_seeds", "split_half"])]
    if seeds.value.notna().any():
        figure, axes = plt.subplots(figsize=(9, 0.3 * seeds.scorer.nunique() + 1.5))
        sns.barplot(data=seeds, y="scorer", x="value", hue="split", ax=axes, errorbar=None,
                    order=seeds[seeds.metric == "split_half"].sort_values("value", ascending=False).scorer.unique())
        axes.set(xlabel="split-half Spearman between seed-averaged halves", ylabel="")
        parts.append(_png(figure))
    return "\n".join(parts)


def _mosaic(images: np.ndarray, side: int = 5) -> np.ndarray:
    """Up to side*side images, (n, h, w) or (n, c, h, w), tiled into one (H, W) or (H, W, c) array in [0, 1],
    white where there are fewer."""
    images = images.astype(float) / (255.0 if images.dtype == np.uint8 else max(float(images.max()), 1.0))
    if images.ndim == 4:
        images = images.transpose(0, 2, 3, 1)
    tiles = np.ones((side * side, *images.shape[1:]))
    tiles[:len(images)] = images[: side * side]
    height, width = images.shape[1:3]
    grid = tiles.reshape(side, side, height, width, -1).transpose(0, 2, 1, 3, 4).reshape(side * height, side * width, -1)
    return grid[..., 0] if grid.shape[-1] == 1 else grid


def extremes_section(board: pd.DataFrame, tables: list[ScoreTable], dataset: Callable[[], Dataset]) -> str:
    """The lowest- and highest-scored test images of each class; ``dataset`` reads the run's data."""
    best = board[(board.task == "difficulty") & (board.seed == "all") & (board.metric == "error_auroc")]
    best = best[best.scorer.isin(tables[0].scorers if tables else [])].sort_values("value", ascending=False)
    if best.value.notna().sum() == 0:
        return _note("no scorer ranks the misclassified test examples in this run")
    spec, error_auroc = best.scorer.iloc[0], best.value.iloc[0]
    try:
        data = dataset()
    except BenchError as error:
        return _note(f"the images could not be read: {error}")
    labels = tables[0].splits["test"]["label"]
    if not np.array_equal(labels, data.test.labels):
        return _note(f"the test split of {data.name} no longer matches the score tables, so no images are shown")
    scores = np.mean([t.splits["test"][spec] for t in tables], axis=0)
    classes = np.unique(labels)
    plt = _plt()
    figure, axes = plt.subplots(2, len(classes), figsize=(1.6 * len(classes), 3.8), squeeze=False)
    for j, label in enumerate(classes):
        members = np.flatnonzero(labels == label)
        ranked = members[np.argsort(scores[members], kind="stable")]
        for i, (chosen, name) in enumerate(((ranked[:25], "lowest"), (ranked[::-1][:25], "highest"))):
            axes[i, j].imshow(_mosaic(data.test.inputs[chosen]), cmap="gray", vmin=0, vmax=1)
            title = data.classes[label] if label < len(data.classes) else f"class {label}"
            title = title.replace("$", r"\$")  # a user's class name is text, never mathtext
            axes[i, j].set(xticks=[], yticks=[], title=title if i == 0 else "",
                           ylabel=f"{name} score" if j == 0 else "")
    return _note(f"{spec}, the scorer with the highest error AUROC here ({error_auroc:.3f}), averaged over "
                 f"{len(tables)} seeds, test split: the 25 lowest (top row) and highest (bottom row) per class. "
                 "The VoG paper (Figs. 2, 3 and 7): low VoG shows clear, prototypical digits; high VoG unusual, "
                 "ambiguous or corrupted ones.") + _png(figure)


def write_report(folder: Path, out: Path | None = None, data_dir: str | None = None) -> Path:
    """Write the HTML report of a results folder and return its path."""
    folder = Path(folder)
    board, tables, config = load_results(folder)
    dataset = functools.cache(lambda: with_training_set(load_dataset(config.dataset, data_dir or config.data_dir),
                                                        config.train_size, config.label_noise))  # read once, if needed
    deciles = decile_rows(board)
    body = {
        "summary": summary_section(board),
        "ranks": ranks_section(board, tables),
        "cost": cost_section(board),
        "ood-heatmap": ood_heatmap_section(board),
        "deciles": deciles_section(deciles),
        "flip": flip_section(board, deciles),
        "boundary": boundary_section(board, tables, dataset),
        "correlations": correlations_section(board),
        "extremes": extremes_section(board, tables, dataset),
    }
    provenance = board[["bench_version", "git_sha", "torch_version", "device"]].drop_duplicates().to_html(index=False)
    accuracy = np.mean([t.meta["accuracy"]["test"] for t in tables]) if tables else np.nan
    page = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>difficulty-bench report: {html.escape(config.name)}</title><style>{STYLE}</style></head><body>",
        f"<h1>difficulty-bench report: {html.escape(str(folder))}</h1>",
        _note(f"{config.dataset}, {config.model}, seeds {config.seeds}, {config.epochs} epochs, label mode "
              f"{config.label_mode}; clean test accuracy {accuracy:.3f} (mean over seeds)"),
        provenance,
        "<ul>" + "".join(f'<li><a href="#{key}">{title}</a></li>' for key, title in SECTIONS.items()) + "</ul>",
    ]
    for key, title in SECTIONS.items():
        page += [f'<h2 id="{key}">{title}</h2>', body[key]]
    page.append(f"<h2>Settings</h2><pre>{html.escape((folder / 'config.toml').read_text())}</pre></body></html>")
    out = Path(out) if out else folder / "report.html"
    try:
        write_atomically(out, lambda temporary: temporary.write_text("\n".join(page)))
    except OSError as error:
        raise BenchError(f"cannot write the report to {out} ({error.strerror}); "
                         "pass --out FILE.html in a folder you can write") from None
    return out

