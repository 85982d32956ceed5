"""The OoD task: clean test split (in-distribution) against each OoD split.

OoD splits are corruptions of the test split (kind ``covariate``) or the test splits of other
datasets (``--ood``: kind ``near`` or ``far`` as OpenOOD v1.5 pairs them or as ``ood_kind`` states, else
``semantic``; ``bench.data.dataset.with_semantic_ood``). Rows per scorer, OoD split and seed, then aggregates:

* ``seed=all``: the mean over seeds, with ``std_seeds`` (sample std, ddof=1) and ``n_seeds``;
* ``split=mean``: the mean over corruptions, with ``std_splits`` (population std over the
  corruptions, ddof=0, the ± of the VoG paper's Table 1);
* ``split=mean, seed=all``: the mean over corruptions of the seed means, its std over
  corruptions, and the std over seeds (and interval) of the per-seed corruption means;
* the same over the splits of one kind, ``split=mean:near``, ``mean:far``, ``mean:covariate`` and
  ``mean:semantic``, when a run has two kinds or more (near and far OoD are never blended unseen: OpenOOD's
  near and far means), and over the splits of one severity, ``split=mean@3``, for corruptions at several
  severities (``gaussian_noise@3``).

Every mean over seeds has its 95% interval, ``ci_low`` and ``ci_high``: the t-interval
over seeds, or where the seeds agree exactly (one seed, or a scorer that does not depend on the
training seed, such as a detector on pixels) an interval over examples: asymptotic by default
(``bench.influence``: DeLong for AUROC, the delta method for the others), or a bootstrap
(``bench.stats``). A split of corrupted copies of the test images (``ood_paired`` in the unit's
meta: image i of the split is test image i corrupted) is drawn by image, the clean and the
corrupted score of each image together, since the two correlate; any other OoD split is
stratified by class (in-distribution and OoD each drawn to its own size). A mean over OoD splits
keeps the noise of the in-distribution examples they share: its asymptotic interval adds the
splits' terms per example, its bootstrap averages the splits' resamples, every split resampled
with the same seed.

An aggregate is NaN when any value it averages is NaN; its note carries the reasons.

Where the run dropped exact copies of in-distribution images from an OoD split (``ood_dropped`` in
the unit's meta, ``bench.data.dataset.without_in_distribution_copies``), every row of that split
and of each mean over it says how many (``with_dropped_copies_noted``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.influence import influences, normal_interval, standard_error
from bench.metrics import OOD_METRICS, ood_metrics, unusable
from bench.schema import BOOTSTRAP, PAIRED, STRATIFIED, TASK_KEYS
from bench.stats import bootstrap_distribution, paired_bootstrap_distribution, percentile_interval
from bench.store import ScoreTable
from bench.tasks.rows import (
    ASYMPTOTIC_KINDS,
    BOOTSTRAP_SEED,
    FROM_EXAMPLES,
    ROW_COLUMNS,
    STATISTICS_OVER_SEEDS,
    Intervals,
    OverExamples,
    designed,
    metric_rows,
    over_seeds,
    over_splits,
    scorer_scores,
    seed_free,
    unit_keys,
)

TASK = "ood"
IN_DISTRIBUTION = "test"
COVARIATE = "covariate"  # the kind of an OoD split that does not say: a corruption of the test split
POLICIES = dict.fromkeys(OOD_METRICS, FROM_EXAMPLES)


def per_seed_rows(table: ScoreTable) -> list[dict]:
    keys = unit_keys(table, TASK)
    rows = []
    inlier = {spec: scores for spec, scores, _ in scorer_scores(table, IN_DISTRIBUTION)}
    for split in table.meta["ood_splits"]:
        for spec, outlier, failure in scorer_scores(table, split):
            if failure:
                values, note = dict.fromkeys(OOD_METRICS, np.nan), failure
            else:
                values, note = ood_metrics(inlier[spec], outlier)
            rows += metric_rows(keys, split, spec, values, note)
    return rows


def groups(tables: list[ScoreTable]) -> dict[str, list[str]]:
    """The OoD splits each mean is over: ``mean`` all of them; ``mean:<kind>`` those of one kind
    (``near``, ``far``, ``covariate``, ``semantic``) when the run has more than one; ``mean@<s>`` those of one
    severity."""
    kinds = tables[0].meta.get("ood_kinds", {})
    splits = tables[0].meta["ood_splits"]
    found = {"mean": splits}
    if len(set(kinds.get(split, COVARIATE) for split in splits)) > 1:
        for kind in dict.fromkeys(kinds.get(split, COVARIATE) for split in splits):
            found[f"mean:{kind}"] = [split for split in splits if kinds.get(split, COVARIATE) == kind]
    severities = sorted({split.rpartition("@")[2] for split in splits if "@" in split}, key=int)
    for severity in severities:
        found[f"mean@{severity}"] = [split for split in splits if split.rpartition("@")[2] == severity]
    return found


def split_intervals(table: ScoreTable, scorers: set[str], how: OverExamples) -> Intervals:
    """(split, scorer, metric) -> the interval over examples and what it is, for every OoD split and mean of one
    unit, for ``scorers``, by ``how``."""
    if how.method == "bootstrap":
        return bootstrap_intervals(table, scorers, how.resamples)
    return asymptotic_intervals(table, scorers)


def asymptotic_intervals(table: ScoreTable, scorers: set[str]) -> Intervals:
    """The asymptotic intervals (``bench.influence``). Each in-distribution image is a unit; an OoD example is one
    too, in its split's stratum, unless the split is paired, where it joins the unit of the image it corrupts.
    A mean over splits averages their terms unit by unit, so the in-distribution noise the splits share stays."""
    paired = set(table.meta.get("ood_paired", ()))
    splits = table.meta["ood_splits"]
    inlier = {spec: scores for spec, scores, failure in scorer_scores(table, IN_DISTRIBUTION) if not failure}
    found: Intervals = {}
    for spec in scorers & set(inlier):
        n = len(inlier[spec])
        terms = {}  # split -> metric -> (value, in-distribution terms, OoD terms)
        for split in splits:
            outlier = next(scores for name, scores, failure in scorer_scores(table, split) if name == spec)
            if outlier is not None and not unusable(np.r_[inlier[spec], outlier]):
                labels = np.r_[np.zeros(n, bool), np.ones(len(outlier), bool)]
                terms[split] = {metric: (value, every[:n], every[n:]) for metric, (value, every)
                                in influences(labels, np.r_[inlier[spec], outlier]).items()}
        for label, members in {**{split: [split] for split in splits}, **groups([table])}.items():
            if not all(split in terms for split in members):
                continue
            units, strata, offset = [np.arange(n)], [np.zeros(n, np.int64)], n
            for stratum, split in enumerate(members, start=1):
                size = len(terms[split]["auroc"][2])
                units.append(np.arange(size) if split in paired else offset + np.arange(size))
                if split not in paired:
                    strata.append(np.full(size, stratum))
                    offset += size
            design = PAIRED if paired >= set(members) else STRATIFIED if not paired & set(members) else ""
            for metric in OOD_METRICS:
                value = np.mean([terms[split][metric][0] for split in members])
                every = np.concatenate([sum(terms[split][metric][1] for split in members)]
                                       + [terms[split][metric][2] for split in members]) / len(members)
                error = standard_error(every, np.concatenate(units), np.concatenate(strata))
                kind = ASYMPTOTIC_KINDS[metric]
                found[label, spec, metric] = (*normal_interval(value, error), designed(kind, design) if design else kind)
    return found


def bootstrap_intervals(table: ScoreTable, scorers: set[str], resamples: int) -> Intervals:
    """The bootstrap intervals: a paired split resampled by image, any other stratified by class; a mean over splits
    averages their resamples, every split resampled with the same seed."""
    members = groups([table])
    paired = set(table.meta.get("ood_paired", ()))
    distributions: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    inlier = {spec: scores for spec, scores, _ in scorer_scores(table, IN_DISTRIBUTION)}
    for split in table.meta["ood_splits"]:
        for spec, outlier, failure in scorer_scores(table, split):
            if spec in scorers and not failure and split in paired:
                distributions[split, spec] = paired_bootstrap_distribution(inlier[spec], outlier, resamples=resamples,
                                                                           seed=BOOTSTRAP_SEED)
            elif spec in scorers and not failure:
                labels = np.r_[np.zeros(len(inlier[spec]), bool), np.ones(len(outlier), bool)]
                distributions[split, spec] = bootstrap_distribution(labels, np.r_[inlier[spec], outlier],
                                                                    resamples=resamples, seed=BOOTSTRAP_SEED)
    kinds = {split: designed(BOOTSTRAP, PAIRED if split in paired else STRATIFIED) for split in table.meta["ood_splits"]}
    for label, splits in members.items():
        kinds[label] = kinds[splits[0]] if len({kinds[split] for split in splits}) == 1 else BOOTSTRAP
        for spec in scorers & set(inlier):
            if all((split, spec) in distributions for split in splits):
                distributions[label, spec] = {
                    metric: np.mean([distributions[split, spec][metric] for split in splits], axis=0)
                    for metric in OOD_METRICS}
    return {(split, spec, metric): (*percentile_interval(values), kinds[split])
            for (split, spec), by_metric in distributions.items() for metric, values in by_metric.items()}


def ood(tables: list[ScoreTable], how: OverExamples = OverExamples()) -> pd.DataFrame:
    """Tidy rows of AUROC, AUPR-In, AUPR-Out and FPR@95TPR (OoD positive, ``fpr95``; in-distribution positive,
    ``fpr95_id``) for every scorer, OoD split and seed, and their means;
    ``how``: the intervals over examples of a one-seed run and of scorers the seed does not change."""
    per_seed = pd.DataFrame([row for table in tables for row in per_seed_rows(table)], columns=ROW_COLUMNS)
    if per_seed.empty:  # a dataset without OoD splits: nothing to measure
        return per_seed
    free = seed_free(per_seed)
    examples = split_intervals(tables[0], free, how) if how.wanted and free else {}
    seed_means = over_seeds(per_seed, POLICIES, free, examples)
    parts = [per_seed, seed_means]
    for label, members in groups(tables).items():
        split_means = over_splits(per_seed[per_seed.split.isin(members)], label)
        # over both: the mean over splits of the seed means, with the spread and interval of the split means over seeds
        spread_over_seeds = over_seeds(split_means, POLICIES, free, examples)[[*TASK_KEYS, *STATISTICS_OVER_SEEDS]]
        over_both = over_splits(seed_means[seed_means.split.isin(members)], label).drop(columns=STATISTICS_OVER_SEEDS)
        parts += [split_means, over_both.merge(spread_over_seeds, on=TASK_KEYS, how="left")[ROW_COLUMNS]]
    return pd.concat(parts, ignore_index=True)


def with_dropped_copies_noted(board: pd.DataFrame, tables: list[ScoreTable]) -> pd.DataFrame:
    """``board`` with the count of exact copies of in-distribution images dropped from an OoD split added to the note
    of each OoD row of that split and of every mean over it (after any other note: the reason for a NaN comes
    first)."""
    dropped = tables[0].meta.get("ood_dropped", {}) if tables else {}
    if not dropped:
        return board
    said = {split: f"{split}: {count} exact {'copy' if count == 1 else 'copies'} of in-distribution images dropped "
                   "before scoring" for split, count in dropped.items()}
    board = board.copy()
    for label, members in {**{split: [split] for split in dropped}, **groups(tables)}.items():
        text = "; ".join(said[split] for split in members if split in said)
        rows = (board.task == TASK) & (board.split == label)
        if text and rows.any():
            board.loc[rows, "note"] = board.loc[rows, "note"].map(lambda note: f"{note}; {text}" if note else text)
    return board
