"""The tasks of one ``mnist-c`` seed, with the asymptotic intervals over examples against the bootstrap.

With one seed every scorer's intervals are over examples. The unit here has the preset's shape, with
scores drawn at random (the time does not depend on their values): one column per scorer spec of the
preset, a training split of 60,000 examples, a test split of 10,000 and 15 paired corrupted splits of
10,000, about 1% of the test predictions wrong. The whole ``bench.tasks.evaluate`` runs with the default
(asymptotic) intervals and with none, taking turns, best of ``REPEAT``, then once with the bootstrap
(minutes); the target is at most 10 s with the default. Under ``BENCH_TINY`` the splits hold 300
examples and the bootstrap 20 resamples.
"""

from __future__ import annotations

import time

import numpy as np

from bench.config import load_preset
from bench.plan import scorer_specs
from bench.stats import RESAMPLES
from bench.store import ScoreTable
from bench.tasks import evaluate
from bench.tasks.rows import OverExamples
from benchmarks.common import best_times, report, sized

PRESET = "mnist-c"
CORRUPTIONS = 15
TARGET_SECONDS = 10.0
REPEAT = 2


def preset_shaped_unit(n_train: int, n_test: int, seed: int = 0) -> ScoreTable:
    """One unit with a column per scorer spec of the preset, random scores and the preset's splits."""
    config = load_preset(PRESET)
    specs = scorer_specs(config)
    rng = np.random.default_rng(seed)

    def split(n: int) -> dict[str, np.ndarray]:
        label = rng.integers(0, 10, n)
        pred = np.where(rng.random(n) < 0.01, (label + 1) % 10, label)
        return {"label": label, "pred": pred, **{spec: rng.standard_normal(n) for spec in specs}}

    corrupted = [f"corruption_{i:02d}" for i in range(CORRUPTIONS)]
    splits = {"train": {**split(n_train), "noisy": np.zeros(n_train, bool)}, "test": split(n_test),
              **{name: split(n_test) for name in corrupted}}
    meta = {"dataset": PRESET, "model": config.model, "seed": 0, "label_mode": "predicted",
            "config": {"scorers": {spec: spec for spec in specs}}, "observed": {spec: [10] for spec in specs},
            "scorers": specs, "failures": {}, "ood_splits": corrupted, "ood_paired": corrupted}
    return ScoreTable(meta, splits)


def run() -> None:
    unit = preset_shaped_unit(sized(60_000, 300), sized(10_000, 300))
    resamples = sized(RESAMPLES, 20)
    seconds = best_times({"asymptotic": lambda: evaluate([unit], OverExamples("asymptotic")),
                          "none": lambda: evaluate([unit], OverExamples("none"))}, repeat=REPEAT, warm_up=False)
    started = time.perf_counter()
    evaluate([unit], OverExamples("bootstrap", resamples))
    seconds["bootstrap"] = time.perf_counter() - started
    report("tasks of one seed", seconds["asymptotic"] / TARGET_SECONDS, f"at most 1: {TARGET_SECONDS:g} s", {
        "unit": f"preset {PRESET}'s {len(unit.meta['scorers'])} scorer specs, {CORRUPTIONS} paired OoD splits of "
                f"{len(unit.splits['test']['label'])} examples, a training split of {len(unit.splits['train']['label'])}",
        "asymptotic intervals (the default)": f"{seconds['asymptotic']:.1f} s",
        f"bootstrap, {resamples} resamples": f"{seconds['bootstrap']:.1f} s = "
                                              f"{seconds['bootstrap'] / seconds['asymptotic']:.1f} times the asymptotic",
        "no intervals over examples": f"{seconds['none']:.1f} s: the intervals cost "
                                      f"{seconds['asymptotic'] - seconds['none']:.1f} s",
    })
