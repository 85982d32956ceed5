"""Other datasets as OoD (--ood): channel conversion by a stated rule, refusals, their kinds (OpenOOD's near and far
pairs, or stated), and means per kind and severity."""

import numpy as np
import pytest
from PIL import Image

from bench import registry
from bench.benchmark import Benchmark
from bench.cli import main
from bench.config import RunConfig
from bench.data import to_channels, with_label_noise, with_semantic_ood
from bench.data.arrays import from_arrays
from bench.errors import BenchError
from bench.leaderboard import read_csv
from bench.store import ScoreTable
from bench.tasks.ood import ood


def dataset(name, shape, n=6, dtype=np.uint8, seed=0):
    x = np.random.default_rng(seed).integers(0, 256, (n, *shape)).astype(dtype)
    return from_arrays(name, x, np.arange(n) % 2, x, np.arange(n) % 2, layout="nhwc" if len(shape) == 3 else None)


def test_gray_is_repeated_into_rgb_and_rgb_becomes_pillows_luma():
    gray = dataset("gray", (5, 4)).test.inputs
    np.testing.assert_array_equal(to_channels(gray, 3), np.repeat(gray[:, None], 3, axis=1))
    rgb = dataset("rgb", (5, 4, 3)).test.inputs
    pillow = np.stack([np.asarray(Image.fromarray(image.transpose(1, 2, 0)).convert("L")) for image in rgb])
    assert np.abs(to_channels(rgb, 1).astype(int) - pillow).max() <= 1  # Pillow rounds in fixed point


def test_semantic_splits_are_added_with_their_kind_and_unknown_labels():
    base = dataset("base", (5, 4, 3))
    combined = with_semantic_ood(base, [dataset("gray", (5, 4)), dataset("other", (5, 4, 3), seed=1)])
    assert list(combined.ood) == ["gray", "other"] and combined.ood_kinds == {"gray": "semantic", "other": "semantic"}
    assert combined.ood["gray"].inputs.shape == (6, 3, 5, 4) and (combined.ood["gray"].labels == -1).all()
    assert "semantic OoD gray" in combined.source and combined.train is base.train


def test_openood_pairs_give_near_and_far_a_stated_kind_wins_and_the_kind_is_in_the_provenance():
    cifar10 = with_label_noise(dataset("cifar10", (5, 4, 3), n=10), 0.5)  # named cifar10[label_noise=0.5]
    others = [dataset("cifar100", (5, 4, 3), seed=1), dataset("mnist", (5, 4), seed=2),
              dataset("svhn", (5, 4, 3), seed=3), dataset("textures", (5, 4), seed=4)]
    combined = with_semantic_ood(cifar10, others)
    assert combined.ood_kinds == {"cifar100": "near", "mnist": "far", "svhn": "semantic", "textures": "semantic"}
    assert all(f"{kind} OoD {name}: arrays {name}" in combined.source for name, kind in combined.ood_kinds.items())
    stated = with_semantic_ood(cifar10, others, {"svhn": "far", "cifar100": "far", "textures": "covariate"})
    assert stated.ood_kinds == {"cifar100": "far", "mnist": "far", "svhn": "far", "textures": "covariate"}
    assert with_semantic_ood(dataset("base", (5, 4, 3)), others[:2]).ood_kinds == dict.fromkeys(["cifar100", "mnist"],
                                                                                               "semantic")


@pytest.mark.parametrize("kinds, message", [
    ({"tin": "near"}, r"ood_kind tin=near: no --ood dataset is named tin \(the OoD datasets, named as their splits: "
                      r"cifar100\); name one of them, or add it with --ood"),
    ({"cifar100": "nearish"}, "ood_kind cifar100=nearish: 'nearish' is no kind of OoD; one of near, far, covariate, "
                              "semantic"),
], ids=["a name of no --ood dataset", "no kind"])
def test_a_stated_kind_of_no_ood_dataset_or_of_no_kind_is_refused(kinds, message):
    with pytest.raises(BenchError, match=message):
        with_semantic_ood(dataset("cifar10", (5, 4, 3)), [dataset("cifar100", (5, 4, 3), seed=1)], kinds)


@pytest.mark.parametrize("value, message", [
    (["svhn"], "config key 'ood_kind' has 'svhn'; write NAME=KIND"),
    (["svhn=nearish"], "config key 'ood_kind' has 'svhn=nearish'; write NAME=KIND, .* KIND one of near, far, "
                       "covariate, semantic"),
    (["svhn=far", "svhn=near"], "config key 'ood_kind' states the kind of svhn twice"),
])
def test_the_config_refuses_a_stated_kind_it_cannot_read(value, message):
    with pytest.raises(BenchError, match=message):
        RunConfig(ood_kind=value)
    assert RunConfig(ood_kind=["my=data=far"]).ood_kind == ["my=data=far"]  # a name with "=": the kind is after the last


def test_mnist_beside_cifar10_is_resized_by_openoods_rule_as_pillow_computes_it_then_repeated_into_rgb():
    """OpenOOD's Resize(32) + CenterCrop(32) on a square 28x28 image is Pillow's bilinear resize to 32x32."""
    mnist = dataset("mnist", (28, 28), n=4, seed=1)
    combined = with_semantic_ood(dataset("cifar10", (32, 32, 3)), [mnist], resize="openood")
    by_hand = np.stack([np.asarray(Image.fromarray(image).resize((32, 32), Image.BILINEAR))
                        for image in mnist.test.inputs])
    np.testing.assert_array_equal(combined.ood["mnist"].inputs, np.repeat(by_hand[:, None], 3, axis=1))
    assert combined.ood_kinds == {"mnist": "far"}
    assert ("far OoD mnist: arrays mnist (content sha256 " in combined.source
            and "; resized from 28x28 to 32x32 by ood_resize openood (OpenOOD v1.5's Resize(32) + CenterCrop(32)"
            in combined.source)
    same_size = with_semantic_ood(dataset("base", (28, 28)), [mnist], resize="openood")
    assert same_size.ood["mnist"].inputs is mnist.test.inputs and "resized" not in same_size.source
    with pytest.raises(BenchError, match="--ood mnist: its images are 28x28 but those of cifar10 32x32, and images are "
                                         "never resized silently; give --ood-resize openood"):
        with_semantic_ood(dataset("cifar10", (32, 32, 3)), [mnist])


@pytest.mark.parametrize("shape, scaled, left, top", [((24, 40, 3), (53, 32), 10, 0), ((40, 24, 3), (32, 53), 0, 10),
                                                      ((48, 50, 3), (33, 32), 0, 0)],
                         ids=["wide", "tall", "larger"])
def test_openoods_rule_scales_the_shorter_side_and_cuts_the_centre_as_torchvision_rounds(shape, scaled, left, top):
    """The longer side int(32 * long / short) (53 from 40 / 24 * 32 = 53.3; 33 from 50 / 48 * 32 = 33.3), the offset
    int(round((53 - 32) / 2)) = round(10.5) = 10 (Python rounds half to even), Pillow's RGB resize."""
    other = dataset("other", shape, n=3, seed=2)
    combined = with_semantic_ood(dataset("base", (32, 32, 3)), [other], resize="openood")
    by_hand = [np.asarray(Image.fromarray(image.transpose(1, 2, 0)).resize(scaled, Image.BILINEAR))
               [top:top + 32, left:left + 32].transpose(2, 0, 1) for image in other.test.inputs]
    np.testing.assert_array_equal(combined.ood["other"].inputs, np.stack(by_hand))


def test_openoods_rule_refuses_in_distribution_images_that_are_not_square():
    with pytest.raises(BenchError, match=r"--ood-resize openood resizes to a square \(OpenOOD's Resize\(S\) \+ "
                                         r"CenterCrop\(S\)\), but the images of base are 5x4"):
        with_semantic_ood(dataset("base", (5, 4, 3)), [dataset("big", (6, 6, 3))], resize="openood")


def test_a_run_records_the_kinds_and_the_resize_and_averages_near_and_far_apart(tmp_path):
    cifar10 = dataset("cifar10", (32, 32, 3), n=40)
    result = Benchmark(cifar10, model="mlp", scorers=["loss"], seeds=[0], epochs=1, bootstrap_resamples=0,
                       ood=[dataset("mnist", (28, 28), n=20, seed=1), dataset("tin", (32, 32, 3), n=20, seed=2)],
                       ood_kind=["tin=near"], ood_resize="openood", out=str(tmp_path)).run(progress=False)
    meta = result.tables[0].meta
    assert meta["ood_kinds"] == {"mnist": "far", "tin": "near"}
    assert "far OoD mnist" in meta["config"]["data_source"] and "near OoD tin" in meta["config"]["data_source"]
    assert "resized from 28x28 to 32x32 by ood_resize openood" in meta["config"]["data_source"]
    ood_rows = result.leaderboard[result.leaderboard.task == "ood"]
    assert {"mnist", "tin", "mean", "mean:far", "mean:near"} == set(ood_rows.split)


def test_the_ood_splits_change_the_scores_but_not_the_trained_model_which_a_run_with_others_reuses(tmp_path):
    base = dataset("cifar10", (32, 32, 3), n=40)
    tin, near = dataset("tin", (32, 32, 3), n=20, seed=2), ["tin=near"]
    combined = with_semantic_ood(base, [tin])
    assert combined.trained_on == base.source != combined.source
    assert with_label_noise(combined, 0.5).trained_on == f"{base.source}; label noise 0.5 (seed 0)"
    settings = dict(model="mlp", scorers=["loss"], seeds=[0], epochs=1, bootstrap_resamples=0, out=str(tmp_path))
    for ood, kinds in [([], []), ([tin], []), ([tin], near), ([tin, dataset("mnist", (28, 28), n=20, seed=1)], near)]:
        result = Benchmark(base, ood=ood, ood_kind=kinds, ood_resize="openood", **settings).run(progress=False)
    assert result.tables[0].meta["ood_kinds"] == {"tin": "near", "mnist": "far"}
    assert len(list((tmp_path / "checkpoints").glob("*.npz"))) == 1  # trained once
    assert len(list((tmp_path / "units").glob("*.npz"))) == 4  # scored four times


@pytest.mark.parametrize("other, message", [
    (dataset("big", (6, 6, 3)), "its images are 6x6 but those of base 5x4"),
    (dataset("floats", (5, 4, 3), dtype=np.float32), "its pixels are float32 but those of base uint8"),
    (dataset("test", (5, 4, 3)), "base already has a split of that name"),
], ids=["another size", "another pixel type", "a name taken"])
def test_an_ood_dataset_that_cannot_be_converted_is_refused_with_the_reason(other, message):
    with pytest.raises(BenchError, match=message):
        with_semantic_ood(dataset("base", (5, 4, 3)), [other])
    with pytest.raises(BenchError, match="--ood x: base already has a split of that name"):
        with_semantic_ood(dataset("base", (5, 4, 3)), [dataset("x", (5, 4, 3)), dataset("x", (5, 4, 3), seed=1)])


def table(seed, scores, kinds):
    """A unit whose scorer `s` gives each OoD split the scores listed (the test split scores 0 .. 9)."""
    test = np.arange(10.0)
    splits = {"test": {"label": np.zeros(10, int), "pred": np.zeros(10, int), "s": test}}
    splits.update({split: {"s": values} for split, values in scores.items()})
    meta = {"dataset": "d", "model": "m", "seed": seed, "label_mode": "predicted", "scorers": ["s"], "failures": {},
            "ood_splits": list(scores), "ood_kinds": kinds, "config": {"scorers": {"s": "s"}}}
    return ScoreTable(meta, splits)


def test_means_per_kind_and_per_severity_average_their_own_splits():
    # AUROC of OoD scores c + 0..9 against 0..9: 0.5 + c / 10 - c^2 / 200 for c in [0, 10]
    shifts = {"blur@1": 2, "blur@2": 6, "noise@1": 4, "noise@2": 10, "other": 8}
    kinds = {split: "covariate" for split in shifts} | {"other": "semantic"}
    board = ood([table(0, {split: np.arange(10.0) + c for split, c in shifts.items()}, kinds)])
    auroc = {split: 0.5 + c / 10 - c * c / 200 for split, c in shifts.items()}
    value = board[(board.seed == "0") & (board.metric == "auroc")].set_index("split").value
    for split, expected in auroc.items():
        assert value[split] == pytest.approx(expected)
    assert value["mean"] == pytest.approx(np.mean(list(auroc.values())))
    assert value["mean:semantic"] == pytest.approx(auroc["other"])
    assert value["mean:covariate"] == pytest.approx(np.mean([auroc[s] for s in shifts if s != "other"]))
    assert value["mean@1"] == pytest.approx((auroc["blur@1"] + auroc["noise@1"]) / 2)
    assert value["mean@2"] == pytest.approx((auroc["blur@2"] + auroc["noise@2"]) / 2)
    one_kind = ood([table(0, {"blur@1": np.arange(10.0) + 2}, {"blur@1": "covariate"})])
    assert not one_kind.split.str.startswith("mean:").any()  # one kind: its mean is the overall one


def test_near_and_far_are_averaged_apart_beside_the_corruptions():
    shifts = {"blur": 2, "cifar100": 4, "tin": 6, "mnist": 8, "svhn": 10}
    kinds = {"blur": "covariate", "cifar100": "near", "tin": "near", "mnist": "far", "svhn": "far"}
    board = ood([table(0, {split: np.arange(10.0) + c for split, c in shifts.items()}, kinds)])
    value = board[(board.seed == "0") & (board.metric == "auroc")].set_index("split").value
    auroc = {split: 0.5 + c / 10 - c * c / 200 for split, c in shifts.items()}
    assert value["mean:near"] == pytest.approx((auroc["cifar100"] + auroc["tin"]) / 2)
    assert value["mean:far"] == pytest.approx((auroc["mnist"] + auroc["svhn"]) / 2)
    assert value["mean:covariate"] == pytest.approx(auroc["blur"])
    assert {"mean", "mean:near", "mean:far", "mean:covariate"} == set(board.split[board.split.str.startswith("mean")])
    assert set(board[board.split == "mean:far"].seed) == {"0", "all"}


@pytest.mark.slow
def test_the_embedded_colour_dataset_runs_end_to_end_against_a_second_source(tmp_path, capsys):
    """Every scorer but the costlier pixel-space detectors (on 3,072 colour pixels each takes seconds to a minute,
    and they share the flattening of ``kde`` and ``docc``, which stay)."""
    out = tmp_path / "out"
    costly = {"aegan", "ae", "mve", "mahalanobis", "pca", "pca-reconstruction", "kpca", "svdd"}
    scorers = sorted(set(registry.available()) - costly)
    assert {"kde", "docc"} <= set(scorers) and len(scorers) >= 30
    assert main(["run", "--dataset", "patches", "--ood", "textures", "--model", "mlp", "--scorers", ",".join(scorers),
                 "--seeds", "1", "--epochs", "2", "--out", str(out), "--no-progress"]) == 0
    board = read_csv(out / "leaderboard.csv")
    assert set(board.task) == {"ood", "difficulty", "consistency", "cost"}
    aurocs = board[(board.task == "ood") & (board.split == "textures") & (board.metric == "auroc")]
    assert aurocs.value.notna().sum() >= len(scorers) - 2  # every scorer but the label-free constant ones
    [unit] = (out / "units").glob("*.npz")
    meta = ScoreTable.load(unit).meta
    assert meta["ood_kinds"] == {"textures": "semantic"} and meta["classes"][:2] == ["astronaut", "cat"]
    assert main(["report", str(out)]) == 0
    assert "astronaut" not in capsys.readouterr().err


@pytest.mark.slow
def test_corruptions_and_another_dataset_are_averaged_apart(tmp_path, capsys):
    rng = np.random.default_rng(0)
    other = tmp_path / "letters.npz"
    x = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
    np.savez(other, x_train=x, y_train=np.zeros(50, int), x_test=x, y_test=np.zeros(50, int))
    out = tmp_path / "out"
    assert main(["run", "--ood", f"npz:{other}", "--model", "mlp", "--scorers", "loss,kde", "--seeds", "1",
                 "--epochs", "1", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    board = read_csv(out / "leaderboard.csv")
    means = set(board[board.task == "ood"].split)
    assert {"mean", "mean:covariate", "mean:semantic", "letters"} <= means
    assert "AUROC by kind of OoD and by severity" in printed and "mean:semantic" in printed


@pytest.mark.slow
def test_the_cpu_cifar_preset_runs_its_recipe_on_the_embedded_colour_data(tmp_path):
    """cifar10-cpu's recipe (poolnet, one-cycle, crops and flips, normalised, bfloat16 autocast, a checkpoint at init)
    end to end."""
    out = tmp_path / "out"
    assert main(["run", "--preset", "cifar10-cpu", "--dataset", "patches", "--ood", "textures", "--epochs", "1",
                 "--seeds", "1", "--early-checkpoints", "2", "--corrupted-size", "20", "--scorers", "loss,grand[epoch=0],vog",
                 "--out", str(out), "--no-progress"]) == 0
    [unit] = (out / "units").glob("*.npz")
    meta = ScoreTable.load(unit).meta
    assert meta["model"] == "poolnet" and meta["observed"]["grand[epoch=0]"] == [0]
    assert meta["observed"]["vog"] == [0, 0.2, 1]  # the epochs of init, step 2 (early_checkpoints) and the one epoch
    assert meta["input_statistics"]["normalized"] and len(meta["input_statistics"]["mean"]) == 3
    training = meta["config"]
    assert (training["schedule"], training["augment"], training["normalize"], training["amp"]) == (
        "onecycle", "crop-flip", True, True)
    board = read_csv(out / "leaderboard.csv")
    assert board[(board.task == "ood") & (board.split == "textures")].value.notna().any()
