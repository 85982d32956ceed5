"""docs/openood.py: the harness's near/far AUROCs beside OpenOOD's, and Spearman between the two orderings."""

import sys
from pathlib import Path

import pandas as pd
import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture
def openood():
    sys.path.insert(0, str(DOCS))
    try:
        import openood

        yield openood
    finally:
        sys.path.remove(str(DOCS))


def board(values: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """A leaderboard's OoD mean rows: scorer -> (near AUROC, far AUROC), with intervals 0.01 either side."""
    rows = [{"task": "ood", "metric": "auroc", "seed": "all", "label_mode": "predicted", "split": f"mean:{kind}",
             "scorer": scorer, "value": value, "ci_low": value - 0.01, "ci_high": value + 0.01}
            for scorer, pair in values.items() for kind, value in zip(("near", "far"), pair)]
    rows.append({**rows[0], "seed": "0", "value": 0.0})  # a seed's row is not the aggregate
    rows.append({**rows[0], "scorer": "vog", "value": 0.0})  # not one of OpenOOD's methods
    return pd.DataFrame(rows)


@pytest.mark.filterwarnings("ignore::scipy.stats.DegenerateDataWarning")  # every resample agrees perfectly
def test_the_same_ordering_gives_spearman_one_and_the_reversed_minus_one(openood):
    methods = openood.OPENOOD
    near = {scorer: entry[1] / 100 for scorer, entry in methods.items()}
    far = {scorer: 1 - entry[3] / 100 for scorer, entry in methods.items()}  # OpenOOD's far ordering reversed
    text = openood.comparison(board({scorer: (near[scorer], far[scorer]) for scorer in methods}))
    assert f"near-OoD, {len(methods)} methods: 1.00 [1.00, 1.00]" in text
    assert f"far-OoD, {len(methods)} methods: -1.00 [-1.00, -1.00]" in text
    assert "| KNN (`knn`) | 90.64 ± 0.20 | 90.64 [89.64, 91.64] | 92.96 ± 0.14 | 7.04 [6.04, 8.04] |" in text
    assert text.splitlines()[2].startswith("| KNN") and "vog" not in text  # ordered by OpenOOD's near AUROC


@pytest.mark.filterwarnings("ignore::scipy.stats.DegenerateDataWarning")  # six methods: resamples of one method
def test_a_partial_agreement_is_scipys_spearman(openood):
    from scipy.stats import spearmanr

    some = list(openood.OPENOOD)[:6]
    ours = {scorer: (0.5 + 0.01 * ((3 * i) % 6), 0.6 + 0.01 * i) for i, scorer in enumerate(some)}
    text = openood.comparison(board(ours))
    expected = spearmanr([ours[s][0] for s in some], [openood.OPENOOD[s][1] for s in some]).statistic
    assert f"near-OoD, 6 methods: {expected:.2f} [" in text


def test_a_leaderboard_without_near_and_far_rows_is_refused_with_the_preset_to_run(openood):
    with pytest.raises(SystemExit, match="bench run --preset cifar10-cpu"):
        openood.comparison(board({"vog": (0.5, 0.5)}))
