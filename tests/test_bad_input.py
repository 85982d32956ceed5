"""Bad input, one parametrised test per kind: data files, configs and flags, results folders, plugins, CSVs.

Each row feeds one input and checks the message (the file or value, the defect, the fix) and
that nothing already computed was lost or left half-written. The next kind of input is one row.
"""

import gzip
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from test_data import SHARED_MNIST, idx_bytes, write_idx_folder

from bench.cli import main
from bench.data.digits import load_digits_c
from bench.leaderboard import read_csv
from bench.store import ScoreTable, load_checkpoints
from conftest import without_costs

pytestmark = pytest.mark.slow  # the rows run `bench` end to end

VALUES = ["task", "scorer", "split", "seed", "metric", "value", "note"]
RUN = ["run", "--dataset", "digits-c", "--model", "mlp", "--seeds", "1", "--epochs", "3", "--no-progress"]


def snapshot(folder: Path) -> dict:
    return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished results folder: every row must leave it as it was."""
    out = tmp_path_factory.mktemp("finished") / "out"
    assert main([*RUN, "--scorers", "loss", "--out", str(out)]) == 0
    return out


# ---------- data files: an idx folder (or MNIST) damaged one way each ----------

def digits_folder(folder: Path, **replace) -> Path:
    """digits-c as an idx folder, with any of its four arrays replaced."""
    digits = load_digits_c()
    arrays = {"train_images": digits.train.inputs, "train_labels": digits.train.labels,
              "test_images": digits.test.inputs, "test_labels": digits.test.labels, **replace}
    write_idx_folder(folder, *arrays.values())
    return folder


def rewrite(name: str, change):
    """Make the folder, then pass the bytes of one of its files through ``change``."""
    def make(folder: Path) -> Path:
        digits_folder(folder)
        path = folder / name
        path.write_bytes(change(path.read_bytes()))
        return folder
    return make


def without(name: str):
    def make(folder: Path) -> Path:
        digits_folder(folder)
        (folder / name).unlink()
        return folder
    return make


LABELS = "t10k-labels-idx1-ubyte.gz"
IMAGES = "t10k-images-idx3-ubyte.gz"
DATA_FILES = {
    "empty file": (rewrite(LABELS, lambda b: b""), f"{LABELS} is empty (0 bytes)"),
    "not gzip": (rewrite(LABELS, gzip.decompress), f"{LABELS} is not gzip-compressed although its name ends in .gz"),
    "truncated gzip stream": (rewrite(LABELS, lambda b: b[:-10]), f"{LABELS} is a truncated gzip stream"),
    "wrong magic": (rewrite(IMAGES, lambda b: gzip.compress(b"\x12\x34" + gzip.decompress(b)[2:])),
                    "is not an idx file: its magic number is 1234"),
    "truncated values": (rewrite(IMAGES, lambda b: gzip.compress(gzip.decompress(b)[:-7])),
                         "the file is truncated; fetch it again"),
    "counts that disagree": (lambda f: digits_folder(f, test_labels=np.zeros(5, np.uint8)),
                             "holds (5,) labels for 540 images; labels must be (n,) with one per image"),
    "labels that are no class numbers": (
        rewrite(LABELS, lambda b: gzip.compress(b"\x00\x00\x0d\x01" + struct.pack(">I", 540) + np.full(540, 1.5, ">f4").tobytes())),
        "holds labels of type float32 from 1.5 to 1.5; labels must be class numbers 0, 1, 2"),
    "flat images": (lambda f: digits_folder(f, train_images=np.zeros((10, 784), np.uint8)),
                    "images must be (n, height, width)"),
    "32x32 images": (lambda f: digits_folder(f, train_images=np.zeros((20, 32, 32), np.uint8),
                                             train_labels=np.arange(20) % 10,
                                             test_images=np.zeros((10, 32, 32), np.uint8), test_labels=np.arange(10)),
                     "are 32x32; the MNIST-C corruptions are defined for 28x28 grayscale images"),
    "a missing file": (without(LABELS), "has no t10k-labels-idx1-ubyte[.gz]; an idx dataset folder holds"),
}


@pytest.mark.parametrize("make, message", DATA_FILES.values(), ids=DATA_FILES)
def test_damaged_data_files_are_named_with_the_defect(tmp_path, capsys, finished, make, message):
    before = snapshot(finished)
    folder = make(tmp_path / "handwriting")
    data = tmp_path / "data"
    assert main([*RUN, "--dataset", f"idx:{folder}", "--data-dir", str(data), "--scorers", "loss",
                 "--out", str(finished)]) == 2
    assert message in capsys.readouterr().err
    assert snapshot(finished) == before
    assert not data.exists() or not any(data.iterdir())  # nothing half-built


needs_mnist = pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="the real MNIST files are in ../shared/data/mnist")


def mnist_copy(root: Path) -> Path:
    shutil.copytree(SHARED_MNIST, root / "mnist")
    return root / "mnist"


@needs_mnist
@pytest.mark.parametrize("damage, message", [
    (lambda folder: (folder / LABELS).unlink(), r"lacks t10k-labels-idx1-ubyte\[\.gz\]"),
    (lambda folder: (folder / LABELS).write_bytes((folder / LABELS).read_bytes()[:-10]),
     f"{LABELS}: MD5 .* differs from the published .*; the file is a truncated gzip stream"),
    (lambda folder: (folder / LABELS).write_bytes(gzip.compress(idx_bytes(np.full(10000, 12, np.uint8)))),
     "the file holds labels from 12 to 12, MNIST's are 0 to 9"),
], ids=["a missing file", "a truncated file", "labels out of range"])
def test_damaged_mnist_files_say_which_and_what_is_wrong_past_the_md5(tmp_path, capsys, finished, damage, message):
    import re

    before = snapshot(finished)
    damage(mnist_copy(tmp_path))
    assert main([*RUN, "--dataset", "mnist", "--data-dir", str(tmp_path), "--scorers", "loss",
                 "--out", str(finished)]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert snapshot(finished) == before


def test_generated_data_is_keyed_by_content_and_a_data_folder_that_cannot_be_written_is_named(tmp_path, capsys):
    """Two idx folders of one name get two generated copies; generating into a folder under a file is refused."""
    digits = load_digits_c()
    first = digits_folder(tmp_path / "a" / "handwriting")
    second = digits_folder(tmp_path / "b" / "handwriting", test_images=digits.test.inputs[::-1].copy(),
                           test_labels=digits.test.labels[::-1].copy())
    data = tmp_path / "data"
    for folder in (first, second, first):
        assert main([*RUN, "--dataset", f"idx:{folder}", "--data-dir", str(data), "--scorers", "loss",
                     "--out", str(tmp_path / "out")]) == 0
    generated = sorted(path.name for path in data.iterdir())
    assert len(generated) == 2 and all(name.startswith("handwriting-c-") for name in generated)
    assert "generating" not in capsys.readouterr().err.split("handwriting-c-")[-1]  # the third run built nothing
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main([*RUN, "--dataset", f"idx:{first}", "--data-dir", str(blocker / "data"), "--scorers", "loss",
                 "--out", str(tmp_path / "out")]) == 2
    assert "cannot write the generated handwriting-c-" in capsys.readouterr().err


# ---------- configs and flags ----------

FLAGS = {
    "no scorers": (["--scorers", ""], "config key 'scorers' is empty"),
    "an unknown scorer": (["--scorers", "los"], "did you mean loss"),
    "a fraction out of range": (["--scorers", "loss", "--label-noise", "1.5"], "'label_noise' is 1.5; it must be in [0, 1)"),
    "an unknown dataset": (["--scorers", "loss", "--dataset", "digits"], "did you mean digits-c"),
    "a bad config value": (["--config", "{tmp}/study.toml"], "'label_mode' is 'oracle'; allowed: predicted, true"),
    "an unknown config key": (["--config", "{tmp}/typo.toml"], "unknown config key 'epoch'; allowed keys:"),
    "a Ray address without Ray": (["--scorers", "loss", "--ray-address", "auto"], "--ray-address is for the Ray executor"),
    "CUDA without a GPU": (["--scorers", "loss", "--device", "cuda"], "torch sees no CUDA GPU; use --device cpu or auto"),
    "a model of the wrong output size": (["--scorers", "loss", "--model", "{tmp}/nets.py:too_few"],
                                         "gives 3 outputs for 10 classes"),
    "a factory of the wrong signature": (["--scorers", "loss", "--model", "{tmp}/nets.py:no_arguments"],
                                         "could not build"),
    "an input shape the model rejects": (["--scorers", "loss", "--model", "{tmp}/nets.py:for_cifar"],
                                         "rejects inputs of shape (1, 28, 28)"),
    "a model file that does not import": (["--scorers", "loss", "--model", "{tmp}/missing.py:net"], "could not be loaded"),
    "a zero probe batch": (["--scorers", "loss", "--probe-batch-size", "0"], "'probe_batch_size' must be at least 1"),
    "a negative thread count": (["--scorers", "loss", "--threads", "-1"], "'threads' must be 0 (the cores this process may use) or more"),
}

NETWORKS = """
from torch import nn
def too_few(shape, n_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 3))
def no_arguments():
    return nn.Linear(784, 10)
def for_cifar(shape, n_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, n_classes))
"""


@pytest.mark.parametrize("flags, message", FLAGS.values(), ids=FLAGS)
def test_bad_flags_and_configs_are_refused_before_anything_is_written(tmp_path, capsys, finished, flags, message):
    (tmp_path / "study.toml").write_text('label_mode = "oracle"\n')
    (tmp_path / "typo.toml").write_text("epoch = 3\n")
    (tmp_path / "nets.py").write_text(NETWORKS)
    flags = [flag.replace("{tmp}", str(tmp_path)) for flag in flags]
    before = snapshot(finished)
    for out in (finished, tmp_path / "fresh"):
        assert main([*RUN, *flags, "--out", str(out)]) == 2
        assert message in capsys.readouterr().err
    assert snapshot(finished) == before
    assert not (tmp_path / "fresh").exists()  # a refused command leaves no empty results folder


def test_a_ray_cluster_that_refuses_the_connection_is_named_with_the_fix(tmp_path, capsys, monkeypatch):
    ray = pytest.importorskip("ray")

    def refuse(*_, **__):
        raise ConnectionError("Failed to connect to Ray cluster at 127.0.0.1:6379")

    monkeypatch.setattr(ray, "init", refuse)
    assert main([*RUN, "--scorers", "loss", "--executor", "ray", "--ray-address", "127.0.0.1:6379",
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "could not join the Ray cluster at 127.0.0.1:6379" in err and "RAY_AUTH_MODE=token" in err


def test_out_of_gpu_memory_names_the_batch_size_to_lower_and_keeps_the_finished_units(tmp_path, capsys, monkeypatch):
    import torch

    from bench import unit

    trained = unit.train_checkpoints

    def second_seed_runs_out(plan, model, split, dataset, seed, *args):
        if seed == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return trained(plan, model, split, dataset, seed, *args)

    monkeypatch.setattr(unit, "train_checkpoints", second_seed_runs_out)
    out = tmp_path / "out"
    assert main([*RUN, "--seeds", "2", "--batch-size", "48", "--scorers", "loss", "--out", str(out)]) == 2
    assert ("out of GPU memory training with batch_size = 48; lower it, e.g. batch_size = 24 in the config file or "
            "--batch-size 24; the finished units are kept") in capsys.readouterr().err
    [kept] = (out / "units").glob("*seed0*.npz")
    assert ScoreTable.load(kept).meta["seed"] == 0 and not list((out / "units").glob("*seed1*"))


# ---------- results folders ----------

@pytest.mark.parametrize("damage", [lambda path: path.write_bytes(b""),
                                    lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])],
                         ids=["empty", "truncated"])
def test_damaged_unit_and_checkpoint_files_are_computed_again_with_a_warning(tmp_path, capsys, damage):
    out = tmp_path / "out"
    assert main([*RUN, "--scorers", "loss,vog", "--out", str(out)]) == 0
    before = read_csv(out / "leaderboard.csv")
    [unit_file], [checkpoints] = (out / "units").glob("*.npz"), (out / "checkpoints").glob("*.npz")
    scores = ScoreTable.load(unit_file)
    for path in (unit_file, checkpoints):
        damage(path)
    capsys.readouterr()
    assert main([*RUN, "--scorers", "loss,vog", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"warning: {unit_file} is damaged" in err and f"warning: {checkpoints} is damaged" in err
    again = ScoreTable.load(unit_file)
    for split, columns in scores.splits.items():
        for column, values in columns.items():
            assert values.tobytes() == again.splits[split][column].tobytes()
    assert load_checkpoints(checkpoints)[1]["checkpoint_epochs"] == [1, 2, 3]
    assert without_costs(read_csv(out / "leaderboard.csv"))[VALUES].equals(without_costs(before)[VALUES])


def test_folders_that_cannot_be_written_are_named_with_the_fix(tmp_path, capsys, finished):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main([*RUN, "--scorers", "loss", "--out", str(blocker / "out")]) == 2
    err = capsys.readouterr().err
    assert f"results folder {blocker / 'out'} is not writable ({blocker} is a file)" in err
    assert "pass --out with a folder you can write" in err
    assert main(["report", str(finished), "--out", str(blocker / "report.html")]) == 2
    assert f"cannot write the report to {blocker / 'report.html'}" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "no leaderboard at" in capsys.readouterr().err


# ---------- plugins ----------

NON_FINITE = '''
import numpy as np
from bench.api import LOGITS, StreamingScorer, register

@register
class Overflowing(StreamingScorer):
    name, family, reference = "overflowing", "test", "-"
    needs = frozenset({LOGITS})
    def start(self, split, size): self.size = getattr(self, "size", {}) | {split: size}
    def update(self, batch, checkpoint): pass
    def scores(self, split): return np.r_[np.inf, np.nan, np.zeros(self.size[split] - 2)]
'''
WRONG_LENGTH = '''
from bench.api import LOGITS, CheckpointScore, register

@register
class Short(CheckpointScore):
    name, family, reference = "short", "test", "-"
    needs, reduce = frozenset({LOGITS}), "mean"
    def value(self, batch): return batch[LOGITS][:3, 0]
'''
NO_FEATURES = '''
from bench.api import Detector, register

@register
class Forgetful(Detector):
    name, reference = "forgetful", "-"
    def __init__(self, k: int = 3): self.k = k
    def fit(self, X, y=None): return self
    def decision_function(self, X): return X[:, 0]
'''
PLUGINS = {
    "non-finite scores": (NON_FINITE, "overflowing", 0, "NaN or infinite"),
    "values of the wrong length": (WRONG_LENGTH, "short", 0, "value() returned shape (3,) for a batch of"),
    "a detector without features": (NO_FEATURES, "forgetful", 2, "could not be built with its default parameters"),
    "an import error": ("raise ImportError('needs a package that is not installed')\n", "x", 2,
                        "could not be imported (ImportError at line 1"),
}


@pytest.mark.parametrize("source, scorer, code, message", PLUGINS.values(), ids=PLUGINS)
def test_plugins_that_break_the_contract_say_what_was_expected(tmp_path, capsys, isolated_registry, finished,
                                                               source, scorer, code, message):
    plugin = tmp_path / "plugin.py"
    plugin.write_text(source)
    before = snapshot(finished)
    out = tmp_path / "out"
    assert main([*RUN, "--scorers", f"loss,{scorer}", "--plugin", str(plugin), "--out", str(out)]) == code
    if code == 0:  # the run goes on: the scorer's rows are NaN with the reason, the others are fine
        board = read_csv(out / "leaderboard.csv")
        ood = board[(board.task == "ood") & (board.metric == "auroc")]
        bad, good = ood[ood.scorer == scorer], ood[ood.scorer == "loss"]
        assert bad.value.isna().all() and bad.note.str.contains(message, regex=False).all()
        assert good.value.notna().all()
    else:
        assert message in capsys.readouterr().err
        assert not out.exists()
    assert snapshot(finished) == before


FLAKY = '''
import torch
from bench.api import LOGITS, CheckpointScore, register

@register
class Flaky(CheckpointScore):
    name, family, reference = "flaky", "test", "-"
    needs, reduce = frozenset({LOGITS}), "mean"
    def value(self, batch):
        BODY
'''


def test_a_scorer_that_failed_then_was_fixed_is_computed_again_not_reused(tmp_path, capsys, isolated_registry):
    plugin, out = tmp_path / "flaky.py", tmp_path / "out"
    plugin.write_text(FLAKY.replace("BODY", "raise RuntimeError('not yet')"))
    assert main([*RUN, "--scorers", "loss,flaky", "--plugin", str(plugin), "--out", str(out)]) == 0
    plugin.write_text(FLAKY.replace("BODY", "return torch.nn.functional.cross_entropy(batch[LOGITS], batch.target, "
                                            "reduction='none')"))
    capsys.readouterr()
    assert main([*RUN, "--scorers", "loss,flaky", "--plugin", str(plugin), "--out", str(out)]) == 0
    assert "computing again the scores that failed" in capsys.readouterr().err
    [unit] = (out / "units").glob("*.npz")
    table = ScoreTable.load(unit)
    assert not table.meta["failures"] and table.meta["reused"] == ["loss"]
    np.testing.assert_array_equal(table.splits["test"]["flaky"], table.splits["test"]["loss"])


# ---------- leaderboard CSVs ----------

@pytest.mark.parametrize("name, content, message", [
    ("missing.csv", None, "no leaderboard at"),
    ("other.csv", b"a,b\n1,2\n", "is not a bench leaderboard: it has no column dataset"),
    ("damaged.csv.gz", b"\x1f\x8b\x08\x00broken", "is not a readable CSV"),
    ("old.csv", b"dataset,model,task,split,scorer,label_mode,seed,metric,value,note\nd,m,ood,mean,vog,predicted,all,"
                b"auroc,0.5,\n", "does not record its scorers' full parameters"),
], ids=["missing", "another CSV", "damaged gzip", "before full specs"])
def test_files_that_are_not_leaderboards_are_named(tmp_path, capsys, finished, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    assert main(["compare", str(path), str(finished / "leaderboard.csv")]) == 2
    assert message in capsys.readouterr().err
