"""`bench run` end to end on digits-c, checked from the outside: the CSV against the score files."""

import itertools
import json
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from bench import api, registry, unit
from bench.cli import main
from bench.data.corruptions import CORRUPTIONS
from bench.leaderboard import read_csv
from bench.schema import COLUMNS
from bench.store import ScoreTable

pytestmark = pytest.mark.slow

FAILING_PLUGIN = '''
import numpy as np
from bench.api import LOGITS, StreamingScorer, register

@register
class Broken(StreamingScorer):
    name, family, reference = "broken", "test", "-"
    needs = frozenset({LOGITS})
    def start(self, split, size): pass
    def update(self, batch, checkpoint): pass
    def scores(self, split): raise ValueError("this plugin is broken")
'''


def slowing_clock():
    """A stand-in for ``time.perf_counter`` whose every tick is one second longer than the last: what the run
    measures does not hang on the machine's load, and the same work measured later reads longer."""
    ticks, now = itertools.count(1), 0.0

    def perf_counter() -> float:
        nonlocal now
        now += next(ticks)
        return now

    return perf_counter


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    registry.available()  # discover the built-ins before taking the snapshot to restore
    saved = dict(api.registered)
    root = tmp_path_factory.mktemp("run")
    plugin = root / "broken_plugin.py"
    plugin.write_text(FAILING_PLUGIN)
    args = ["run", "--scorers", "all,broken,vog[window=early|all]", "--seeds", "0,1", "--epochs", "2", "--out", str(root / "out"),
            "--plugin", str(plugin), "--no-progress"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(time, "perf_counter", slowing_clock())
        code = main(args)
    yield code, root / "out", args
    api.registered.clear()
    api.registered.update(saved)


def test_run_succeeds_and_writes_the_documented_files(finished_run):
    code, out, _ = finished_run
    assert code == 0
    assert (out / "leaderboard.csv").is_file() and (out / "config.toml").is_file()
    assert len(list((out / "units").glob("*.npz"))) == 2
    board = read_csv(out / "leaderboard.csv")
    assert list(board.columns) == COLUMNS
    windows = {"vog[window=early]", "vog[window=all]"}  # and vog, whose window is the last 3 checkpoints
    builtins = {registry.create(name).spec for name in registry.builtin()}  # the label-quality ones name `probs`
    assert set(board[board.task == "ood"].scorer) == builtins | {"broken"} | windows  # all: the built-ins
    assert set(board.task) == {"ood", "difficulty", "consistency", "cost"}  # no label noise, so no mislabel task
    # Two epochs: VoG's early and late windows read the same checkpoints, so there is no early/late pair.
    assert (board.vs_scorer[board.task != "consistency"] == "").all()


def test_every_registered_scorer_runs_and_gives_finite_scores(finished_run):
    _, out, _ = finished_run
    for path in (out / "units").glob("*.npz"):
        table = ScoreTable.load(path)
        assert set(table.meta["failures"]) == {"broken"}
        for spec in table.scorers:
            for split, columns in table.splits.items():
                assert np.isfinite(columns[spec]).all(), (spec, split)


def test_every_auroc_in_the_csv_is_recomputed_from_the_score_files(finished_run):
    _, out, _ = finished_run
    board = read_csv(out / "leaderboard.csv")
    checked, expected = 0, 0
    for path in (out / "units").glob("*.npz"):
        with np.load(path) as archive:  # plain numpy, as a user would
            meta = json.loads(str(archive["meta"]))
            seed = str(meta["seed"])
            expected += (len(meta["scorers"]) - len(meta["failures"])) * len(meta["ood_splits"])
            clean = {k.split("/", 1)[1]: archive[k] for k in archive.files if k.startswith("test/")}
            for key in archive.files:
                split, _, scorer = key.partition("/")
                if split in ("test", "train", "meta") or scorer in ("id", "label", "pred", "noisy", "broken"):
                    continue
                scores = np.r_[clean[scorer], archive[key]]
                is_ood = np.r_[np.zeros(len(clean[scorer])), np.ones(len(archive[key]))]
                rows = board[(board.scorer == scorer) & (board.split == split) & (board.seed == seed)]
                values = dict(zip(rows.metric, rows.value))
                checked += 1
                if np.all(scores == scores[0]):  # e.g. forgetting with predicted labels: no label, no event
                    assert np.isnan(values["auroc"]) and rows.note.str.contains("all scores are equal").all()
                    continue
                assert values["auroc"] == pytest.approx(roc_auc_score(is_ood, scores), abs=1e-6)
                assert values["aupr_out"] == pytest.approx(average_precision_score(is_ood, scores), abs=1e-6)
                assert values["aupr_in"] == pytest.approx(average_precision_score(1 - is_ood, -scores), abs=1e-6)
    n_scorers = len(registry.builtin()) + 2  # every built-in and the two VoG windows, not the broken plugin
    assert checked == expected == 2 * n_scorers * len(CORRUPTIONS)  # seeds x scorers x corruptions


def test_aggregates_are_means_and_stds_of_the_per_seed_rows(finished_run):
    _, out, _ = finished_run
    board = read_csv(out / "leaderboard.csv")
    auroc = board[(board.scorer == "vog") & (board.metric == "auroc")]
    per_seed = auroc[(auroc.seed != "all") & (auroc.split != "mean")].pivot(index="split", columns="seed", values="value")
    over_seeds = auroc[(auroc.seed == "all") & (auroc.split != "mean")].set_index("split")["value"]
    np.testing.assert_allclose(over_seeds[per_seed.index], per_seed.mean(axis=1), atol=1e-6)
    overall = board[(board.scorer == "vog") & (board.split == "mean") & (board.seed == "all")].set_index("metric")
    assert overall.value["auroc"] == pytest.approx(per_seed.mean(axis=1).mean(), abs=1e-6)
    assert overall.std_splits["auroc"] == pytest.approx(per_seed.mean(axis=1).std(ddof=0), abs=1e-6)
    assert overall.std_seeds["auroc"] == pytest.approx(per_seed.mean(axis=0).std(ddof=1), abs=1e-6)


def test_a_failing_plugin_is_a_nan_row_with_its_error_and_the_others_go_on(finished_run):
    _, out, _ = finished_run
    board = read_csv(out / "leaderboard.csv")
    broken = board[board.scorer == "broken"]
    assert broken.value.isna().all()
    assert broken.note.str.contains("ValueError: this plugin is broken").all()
    others = board[(board.scorer != "broken") & board.metric.isin(["auroc", "fpr95"])]
    assert not others.note.fillna("").str.contains("failed").any()
    assert (others.value.notna() | others.note.str.contains("all scores are equal")).all()


def test_difficulty_and_consistency_rows_are_recomputed_from_the_score_files(finished_run):
    from scipy.stats import spearmanr

    _, out, _ = finished_run
    board = read_csv(out / "leaderboard.csv")
    tables = sorted((ScoreTable.load(p) for p in (out / "units").glob("*.npz")), key=lambda t: t.meta["seed"])
    test = tables[0].splits["test"]
    wrong = test["pred"] != test["label"]
    row = board[(board.task == "difficulty") & (board.scorer == "loss") & (board.seed == "0") & (board.metric == "error_auroc")]
    assert row.value.item() == pytest.approx(roc_auc_score(wrong, test["loss"]), abs=1e-6)
    rho = spearmanr(tables[0].splits["train"]["margin"], tables[1].splits["train"]["margin"]).statistic
    row = board[(board.task == "consistency") & (board.scorer == "margin") & (board.split == "train") & (board.metric == "split_half")]
    assert row.value.item() == pytest.approx(rho, abs=1e-6)  # two seeds: each half is one seed


def test_show_and_report_read_the_results_folder(finished_run, capsys):
    import base64
    import re

    _, out, _ = finished_run
    assert main(["show", str(out / "leaderboard.csv")]) == 0
    shown = capsys.readouterr().out
    for task in ("ood:", "difficulty:", "consistency:", "ood: AUROC by OoD split"):
        assert task in shown
    assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    from bench.report import SECTIONS

    assert re.findall(r'<h2 id="([^"]+)">', page) == list(SECTIONS)
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) >= 6 and all(base64.b64decode(image).startswith(b"\x89PNG") for image in images)
    assert "could not" not in page and "src=\"http" not in page  # every image inline, none missing
    assert "averaged over 2 seeds" in page
    assert "needs two variants of a scorer that read early and late checkpoints" in page  # two epochs: no pair
    ranks = page.split('id="ranks"')[1].split("<h2")[0]
    assert "Friedman chi2" in ranks and "DeLong" in ranks and "average rank over 15 blocks (OoD splits, each the mean over 2 seeds)" in ranks


def test_second_run_reuses_every_finished_score_and_computes_only_the_failed_one_again(finished_run, monkeypatch,
                                                                                      capsys):
    _, out, args = finished_run
    before = read_csv(out / "leaderboard.csv")

    def no_training(*_, **__):
        raise AssertionError("a model was trained again")

    monkeypatch.setattr(unit, "train", no_training)
    capsys.readouterr()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert err.count("computing again the scores that failed") == 2 and "broken" in err  # a failure is never final
    after = read_csv(out / "leaderboard.csv")
    pd.testing.assert_series_equal(before.value, after.value)


def test_same_config_and_seed_give_bit_identical_score_tables(finished_run, tmp_path):
    """Seed 1 alone, recomputed from scratch, equals seed 1 of the two-seed run, which took its
    model-free detector columns from seed 0's unit."""
    _, out, _ = finished_run
    again = tmp_path / "again"
    assert main(["run", "--scorers", "all", "--seeds", "1-1", "--epochs", "2", "--out", str(again), "--no-progress"]) == 0
    [fresh] = (again / "units").glob("*.npz")
    first = ScoreTable.load(next(p for p in (out / "units").glob("*seed1*")))
    second = ScoreTable.load(fresh)
    assert {"kde", "aegan", "vog"} <= set(second.scorers)
    for split, columns in second.splits.items():
        for column, values in columns.items():
            assert values.tobytes() == first.splits[split][column].tobytes(), (split, column)


def test_unknown_scorer_is_refused_before_any_training(tmp_path, capsys):
    assert main(["run", "--scorers", "vgo", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "did you mean vog" in capsys.readouterr().err
    assert not (tmp_path / "units").exists()


def test_invalid_config_file_names_the_key_and_the_allowed_values(tmp_path, capsys):
    config = tmp_path / "study.toml"
    config.write_text('dataset = "digits-c"\nlabel_mode = "oracle"\n')
    assert main(["run", "--config", str(config), "--out", str(tmp_path)]) == 2
    assert "'label_mode' is 'oracle'; allowed: predicted, true" in capsys.readouterr().err
    config.write_text('epoch = 3\n')
    assert main(["run", "--config", str(config), "--out", str(tmp_path)]) == 2
    assert "unknown config key 'epoch'; allowed keys:" in capsys.readouterr().err


def test_run_on_an_unseen_idx_folder_with_label_noise(tmp_path):
    from test_data import write_idx_folder

    from bench.data.digits import load_digits_c

    digits = load_digits_c()
    folder = tmp_path / "handwriting"
    write_idx_folder(folder, digits.train.inputs, digits.train.labels, digits.test.inputs, digits.test.labels)
    out = tmp_path / "out"
    assert main(["run", "--dataset", f"idx:{folder}", "--data-dir", str(tmp_path / "data"), "--label-noise", "0.2",
                 "--scorers", "loss,max-softmax", "--seeds", "1", "--epochs", "1", "--out", str(out), "--no-progress"]) == 0
    board = read_csv(out / "leaderboard.csv")
    assert set(board.dataset) == {"handwriting[label_noise=0.2]"}
    assert set(board.task) == {"ood", "mislabel", "difficulty", "consistency", "cost"}
    [unit] = (out / "units").glob("*.npz")
    with np.load(unit) as archive:
        noisy, labels = archive["train/noisy"], archive["train/label"]
    changed = labels != digits.train.labels
    np.testing.assert_array_equal(noisy, changed)
    assert 0.15 * len(labels) < changed.sum() <= 0.2 * len(labels) + 1


def test_a_dataset_without_ood_splits_gives_an_empty_ood_task():
    from bench.tasks.ood import ood

    table = ScoreTable({"dataset": "mnist", "model": "lenet", "seed": 0, "label_mode": "predicted", "scorers": ["loss"],
                        "failures": {}, "ood_splits": []},
                       {"train": {"loss": np.ones(3)}, "test": {"loss": np.ones(2)}})
    assert ood([table]).empty


@pytest.mark.slow
def test_the_memorisation_preset_memorises_the_shuffled_labels_on_a_small_case(tmp_path):
    """The preset's recipe (LeNet-5 without weight decay, 100 epochs, checkpoints every 10 from initialisation)
    on 300 digits-c training images with 20% of the labels shuffled: the leaderboard's (model) rows record a
    training accuracy of at least 0.99 on the labels as given, the shuffled ones predicted as shuffled."""
    from bench import runner
    from bench.config import load_preset

    config = load_preset("memorisation").updated(dataset="digits-c", train_size=300, seeds=[0], scorers=["loss"],
                                                 out=str(tmp_path))
    board = runner.run(config, progress=False).leaderboard
    model = board[(board.scorer == "(model)") & (board.seed == "0")].set_index("metric").value
    assert model["train_accuracy"] >= 0.99 and model["memorised"] >= 0.95
    assert set(board.dataset) == {"digits-c[train_size=300][label_noise=0.2]"}
    assert len(ScoreTable.load(next((tmp_path / "units").glob("*.npz"))).splits["train"]["id"]) == 300


def test_a_score_shared_by_the_seeds_carries_the_cost_measured_where_it_was_computed(finished_run):
    """A pixel detector is computed by seed 0 and reused by seed 1: seed 1's unit records seed 0's cost of it,
    while a model-based score is measured for each seed on its own (and keeps that cost if a rerun reuses it).
    The run's clock is ``slowing_clock``, on which seed 1's measurement of the same work reads longer than seed 0's."""
    _, out, _ = finished_run
    first, second = (ScoreTable.load(path).meta for path in sorted((out / "units").glob("*.npz")))
    assert "kde" in second["reused"] and second["cost"]["kde"] == first["cost"]["kde"]
    assert all(measured > 0 for measured in first["cost"]["kde"].values())  # time and memory were measured
    assert second["cost"]["loss"]["seconds"] != first["cost"]["loss"]["seconds"]


def test_probe_train_size_scores_a_stratified_sample_of_the_training_split_as_the_full_probe_does(tmp_path):
    """The same trained models (the checkpoints are reused, nothing trains again) scored on 60 of the training
    examples, drawn per class in proportion: each example keeps its id, label, noise flag, distance to the boundary
    and, to float precision, its scores, the cross-fitted ones included; the test split is untouched."""
    from bench import runner
    from bench.config import RunConfig
    from bench.data.dataset import stratified_sample

    specs = ["loss", "oga[detector=l2]", "self-confidence[probs=cross-fit]"]  # none fitted on the training split
    config = RunConfig(dataset="two-blobs", model="mlp", epochs=2, seeds=[0], scorers=specs, label_noise=0.2,
                       cross_fit=2, out=str(tmp_path))
    [full] = runner.run(config, progress=False).tables
    [sampled] = runner.run(config.updated(probe_train_size=60), progress=False).tables
    assert sampled.meta["seconds"]["train"] == sampled.meta["seconds"]["cross_fit"] == 0  # reused
    whole, part = full.splits["train"], sampled.splits["train"]
    expected = stratified_sample(whole["label"], 60, seed=0)
    np.testing.assert_array_equal(part["id"], expected)
    assert np.bincount(part["label"]).tolist() == [30, 30]  # two balanced classes
    for column in ("label", "noisy", "boundary_distance", "pred"):
        np.testing.assert_array_equal(part[column], whole[column][expected], err_msg=column)
    for spec in specs:
        np.testing.assert_allclose(part[spec], whole[spec][expected], rtol=1e-5, atol=1e-7, err_msg=spec)
    for column, values in full.splits["test"].items():
        np.testing.assert_allclose(sampled.splits["test"][column], values, rtol=1e-5, atol=1e-7, err_msg=column)
