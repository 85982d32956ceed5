"""The leaderboard's schema: its columns, and the headline metrics with the direction that is better.

Plain data, importable without torch, scipy or the registry.
"""

from __future__ import annotations

from dataclasses import dataclass

# A row is identified by its keys; ``full_spec`` names the scorer with every parameter written
# out, so that two leaderboards made with different defaults never join different methods.
# A row that compares two scorers (the early/late flip, the cross-scorer Spearman) names the
# second in ``vs_scorer`` and ``vs_full_spec``; both are empty on every other row.
KEYS = ["dataset", "model", "task", "split", "scorer", "full_spec", "vs_scorer", "vs_full_spec", "label_mode", "seed",
        "metric"]
SPECS = ["full_spec", "vs_full_spec"]  # added from the units: tasks write the other keys
TASK_KEYS = [key for key in KEYS if key not in SPECS]
# A value and its statistics: over seeds its sample std, 95% interval, the seeds it averages and what the
# interval is (below); for a mean over OoD splits, the population std over them.
STATISTICS = ["std_seeds", "ci_low", "ci_high", "n_seeds", "interval", "std_splits"]
MEASUREMENT = ["value", *STATISTICS, "note"]
PROVENANCE = ["bench_version", "git_sha", "config_hash", "torch_version", "device", "created_at"]
COLUMNS = KEYS + MEASUREMENT + PROVENANCE
PROTOCOL = ["dataset", "model", "label_mode"]
MODEL_ROW = "(model)"  # the scorer of rows about the trained model itself (the mislabel task's memorisation)
# what ``interval`` says a row's interval is ("" where it has none)
T_SEEDS = "t over seeds"
BINOMIAL = "exact binomial over seeds"  # Clopper-Pearson, for a fraction of seeds
# Where the seeds agree exactly (one seed, or a scorer the seed does not change), an interval over examples:
# asymptotic (``bench.influence``) by metric, or the bootstrap (``bench.stats``); the tasks add how the examples
# were drawn, " (stratified)" by class or " (paired)" by image with its corrupted copy.
BOOTSTRAP = "bootstrap over examples"
DELONG = "DeLong over examples"  # AUROC
DELTA_METHOD = "delta method over examples"  # AUPR, AP, FPR@95
FISHER_Z = "Fisher z over examples"  # Spearman
STRATIFIED, PAIRED = "stratified", "paired"

# The families of scorers, in the order tables group them (``bench show --by-family``); a plugin may name another.
FAMILIES = ("training dynamics", "gradient", "output-based", "feature-based", "pixel-space")


@dataclass(frozen=True)
class Headline:
    """A metric shown in summaries and checked by ``compare``: where it lives and which way is better."""

    task: str
    split: str
    metric: str
    header: str
    better: int  # +1: higher is better, -1: lower is better
    std: str = ""  # the column of the spread shown after ±
    interval: bool = True  # its 95% interval (``ci_low``, ``ci_high``) shown in brackets
    integer: bool = False
    scientific: bool = False  # printed as 1.23e-45 (p-values)
    scale: float = 1.0  # printed times this (bytes as MB)


COST = Headline("cost", "all", "seconds", "seconds", -1)  # shown beside every task's first headline

HEADLINES = [
    Headline("ood", "mean", "auroc", "AUROC", +1, "std_splits"),
    Headline("ood", "mean", "aupr_in", "AUPR-In", +1, "std_splits"),
    Headline("ood", "mean", "aupr_out", "AUPR-Out", +1, "std_splits"),
    Headline("ood", "mean", "fpr95", "FPR@95", -1, "std_splits"),
    Headline("mislabel", "train", "auroc", "AUROC", +1),
    Headline("mislabel", "train", "ap", "AP", +1),
    Headline("mislabel", "train", "precision_at_k", "P@k", +1),
    Headline("mislabel", "train", "welch_t", "Welch t", +1),
    Headline("mislabel", "train", "welch_p", "Welch p", -1, interval=False, scientific=True),
    Headline("difficulty", "test", "error_auroc", "error AUROC", +1),
    Headline("difficulty", "test", "error_ratio", "top/bottom error", +1),
    Headline("difficulty", "test", "early_late_flip", "early/late flip", +1),
    Headline("boundary", "train", "nearness_spearman", "Spearman train", +1),
    Headline("boundary", "test", "nearness_spearman", "Spearman test", +1),
    Headline("consistency", "test", "split_half", "split-half test", +1, interval=False),
    Headline("consistency", "test", "runs_for_0.9", "seeds for 0.9 test", -1, interval=False, integer=True),
    Headline("consistency", "train", "split_half", "split-half train", +1, interval=False),
    Headline("consistency", "train", "runs_for_0.9", "seeds for 0.9 train", -1, interval=False, integer=True),
    COST,
    Headline("cost", "all", "state_bytes", "state MB", -1, interval=False, scale=1e-6),
]
BETTER = {h.metric: h.better for h in HEADLINES}
CAPTIONS = {
    "ood": "OoD detection, clean test vs each OoD split: mean ± std over OoD splits [95% interval]",
    "mislabel": "Mislabel detection on the training split, shuffled labels positive: mean [95% interval]",
    "difficulty": "Test error by score: AUROC for the misclassified examples, top/bottom decile error: mean [95% interval]",
    "boundary": "Nearness to the Bayes boundary: Spearman of the score with minus the distance to it (1: nearest\n"
                "ranked hardest, the VoG paper's Fig. 1): mean [95% interval]",
    "consistency": "Agreement between seeds: Spearman of seed-averaged halves, and seeds to average for 0.9\n"
                   "(scorers that do not use the trained model, such as detectors on pixels, agree perfectly)",
    "cost": "Cost per unit: seconds of the scorer's own work and its share of the probe's passes (training not\n"
            "included), and the peak size of its running state: mean [95% interval]",
}
