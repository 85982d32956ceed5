"""Leaderboards as text: one table per task and protocol, a row per scorer, best first."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
from tabulate import tabulate

from bench.schema import BOOTSTRAP, CAPTIONS, COST, FAMILIES, HEADLINES, MODEL_ROW, PROTOCOL, Headline


WIDTH = 120  # columns of the terminal the tables are made for


def text_table(frame: pd.DataFrame, width: int = WIDTH) -> str:
    """Left-aligned columns under a header rule; a table wider than ``width`` is split into blocks of
    columns that fit, each repeating the first column (the row's name)."""
    def render(part: pd.DataFrame) -> str:
        return tabulate(part.astype(str), headers="keys", tablefmt="simple", showindex=False, disable_numparse=True,
                        stralign="left")

    whole = render(frame)
    if len(frame.columns) < 3 or max(map(len, whole.splitlines())) <= width:
        return whole
    first, blocks, block = frame.columns[0], [], []
    for column in frame.columns[1:]:
        if block and max(map(len, render(frame[[first, *block, column]]).splitlines())) > width:
            blocks.append(block)
            block = []
        block.append(column)
    return "\n\n".join(render(frame[[first, *columns]]) for columns in [*blocks, block])


def _cell(mean: float, std: float = np.nan, interval: tuple[float, float] = (np.nan, np.nan), integer: bool = False,
          scientific: bool = False) -> str:
    if np.isnan(mean) or np.isinf(mean):
        return str(mean)
    small = abs(mean) < 1e-3 and mean != 0  # three significant digits, not three zeros

    def number(v: float) -> str:
        return f"{v:.3g}" if small else f"{v:.3f}"

    if integer:
        text = f"{mean:.0f}"
    elif scientific:
        text = f"{mean:.2e}"
    else:
        text = number(mean)
    if not np.isnan(std):
        text += f" ± {number(std)}"
    if np.isfinite(interval).all():
        text += f" [{number(interval[0])}, {number(interval[1])}]"
    return text


def shown_scorers(rows: pd.DataFrame) -> pd.Series:
    """The scorer of each row as a table shows it: ``a vs b`` for a row that compares two."""
    return rows.scorer.where(rows.vs_scorer == "", rows.scorer + " vs " + rows.vs_scorer)


def by_family(scorers: list[str], families: dict[str, str]) -> list[str]:
    """``scorers`` (best first) grouped by family, the families in ``FAMILIES`` order and any other after them."""
    order = {family: rank for rank, family in enumerate(FAMILIES)}
    return sorted(scorers, key=lambda s: (order.get(families[s], len(order)), families[s]))


def task_summary(board: pd.DataFrame, task: str,
                 families: dict[str, str] | None = None) -> tuple[pd.DataFrame, dict[str, str]]:
    """Scorer x headline metrics of one task (over seeds), best first, with each scorer's cost in seconds
    beside the first where the board measured it; and why NaN cells are NaN. With ``families`` (shown scorer
    -> family), a family column, and the rows grouped by it (best first within each)."""
    own = [h for h in HEADLINES if h.task == task]
    costed = task != COST.task and ((board.task == COST.task) & (board.metric == COST.metric)).any()
    headlines = [own[0], COST, *own[1:]] if costed else own
    rows = board[board.task.isin({task, COST.task}) & (board.seed == "all") & (board.metric != "spearman_with")]
    rows = rows.assign(scorer=shown_scorers(rows))
    lookup = {(r.task, r.split, r.scorer, r.metric): r for r in rows.itertuples()}

    def key(h: Headline, scorer: str) -> tuple[str, str, str, str]:
        return h.task, h.split, scorer, h.metric

    def value(h: Headline, scorer: str, column: str = "value") -> float:
        row = lookup.get(key(h, scorer))
        return np.nan if row is None else getattr(row, column) * h.scale

    def cell(h: Headline, scorer: str) -> str:
        if key(h, scorer) not in lookup:
            return ""
        std = value(h, scorer, h.std) if h.std else np.nan
        interval = (value(h, scorer, "ci_low"), value(h, scorer, "ci_high")) if h.interval else (np.nan, np.nan)
        return _cell(value(h, scorer), std, interval, h.integer, h.scientific)

    scorers = [s for s in dict.fromkeys(rows.scorer) if any(key(h, s) in lookup for h in own)]
    first = pd.Series([value(headlines[0], s) for s in scorers], index=scorers, dtype=float)
    scorers = list(first.sort_values(ascending=headlines[0].better < 0, na_position="last", kind="stable").index)
    columns = {h.header: [cell(h, s) for s in scorers] for h in headlines}
    if families is not None:
        scorers = by_family(scorers, families)
        columns = {"family": [families[s] for s in scorers], **{h.header: [cell(h, s) for s in scorers] for h in headlines}}
    table = pd.DataFrame(columns, index=pd.Index(scorers, name="scorer"))
    reasons = {}
    for s in scorers:
        for h in own:
            row = lookup.get(key(h, s))
            if row is not None and np.isnan(row.value) and row.note:
                reasons.setdefault(s, row.note)
    return table, reasons


def ood_by_corruption(board: pd.DataFrame, metric: str = "auroc", means: bool = False) -> pd.DataFrame:
    """Scorer x OoD split table of one metric, averaged over seeds; with ``means``, scorer x the means
    per kind and severity (``mean:semantic``, ``mean@3``) instead."""
    rows = board[(board.task == "ood") & (board.seed == "all") & (board.metric == metric)]
    rows = rows[rows.split.str.startswith(("mean:", "mean@")) if means else ~rows.split.str.startswith("mean")]
    table = rows.pivot_table(index="scorer", columns="split", values="value", dropna=False, aggfunc="first")
    order = list(dict.fromkeys(rows.split))
    return table[order].map(lambda v: f"{v:.3f}")


def model_summary(board: pd.DataFrame) -> str:
    """The mislabel task's ``MODEL_ROW`` rows as one line: did the model memorise the noisy labels?"""
    rows = board[(board.task == "mislabel") & (board.scorer == MODEL_ROW) & (board.seed == "all")]
    value = {r.metric: _cell(r.value, interval=(r.ci_low, r.ci_high))
             for r in rows.itertuples() if r.metric in ("train_accuracy", "memorised")}
    if len(value) < 2:
        return ""
    return (f"the model: training accuracy on the labels as given (shuffled ones included) {value['train_accuracy']}; "
            f"shuffled labels it predicts (memorised) {value['memorised']}")


def interval_caption(rows: pd.DataFrame) -> str:
    """What the bracketed intervals of one protocol's tables are, or that its file has none."""
    if not rows.ci_low.notna().any():
        versions = ", ".join(sorted(set(rows.get("bench_version", pd.Series(dtype=str)).dropna()))) or "unknown"
        return (f"no intervals: this leaderboard was written by bench {versions}, before they were recorded (0.4.0); "
                "its tables show means without brackets. Rerun its command with this version for them")
    seeds = sorted(set(rows.seed) - {"all"})
    kinds = set(rows.get("interval", pd.Series(dtype=str)).dropna())
    over_examples = ("a bootstrap over examples" if any(kind.startswith(BOOTSTRAP) for kind in kinds) else
                     "asymptotic intervals over examples (DeLong for AUROC, the delta method for AUPR, AP and FPR@95, "
                     "Fisher's z for Spearman)")
    if len(seeds) > 1:
        return f"95% intervals: t over the {len(seeds)} seeds; {over_examples} for scores the seed does not change"
    return f"95% intervals: one seed, so {over_examples}, stratified by class where the metric has classes"


def render(board: pd.DataFrame, caveats: dict[str, str] | None = None,
           families: dict[str, str] | None = None) -> str:
    """Every task's summary table per protocol (dataset, model, label mode), as text; ``caveats`` (dataset ->
    what its results do not measure) printed under the protocol's title; with ``families`` (shown scorer ->
    family, see ``task_summary``), the rows grouped by family."""
    parts = []
    for protocol, rows in board.groupby(PROTOCOL, sort=False):
        parts.append("== " + " / ".join(map(str, protocol)) + " ==")
        if caveat := (caveats or {}).get(protocol[0]):
            parts.append(textwrap.fill(f"caveat: {caveat}", WIDTH))
        parts.append(textwrap.fill(interval_caption(rows), WIDTH))
        for task, caption in CAPTIONS.items():
            if not (rows.task == task).any():
                continue
            table, reasons = task_summary(rows, task, families)
            parts += ["", f"{task}: {caption}", "", text_table(table.reset_index())]
            parts += [f"  {scorer}: nan because {reason}" for scorer, reason in reasons.items()]
            if task == "mislabel" and (model := model_summary(rows)):
                parts += ["", model]
            if task == "ood":
                order = [s for s in table.index if s in set(rows.scorer)]
                by_split = ood_by_corruption(rows).reindex(order)
                parts += ["", "ood: AUROC by OoD split (mean over seeds)", "", text_table(by_split.reset_index())]
                by_kind = ood_by_corruption(rows, means=True)
                if not by_kind.empty:
                    parts += ["", "ood: AUROC by kind of OoD and by severity (mean over seeds)", "",
                              text_table(by_kind.reindex(order).reset_index())]
        parts.append("")
    return "\n".join(parts)


