"""What an outside audit broke as a new user would, one test per finding: each feeds the input and checks the
behaviour against what the files (or the input itself) say, not against bench's own bookkeeping."""

import os
import subprocess
import sys
import tomllib
import typing
from pathlib import Path

import numpy as np
import pytest

from bench import registry, unit
from bench.cli import main
from bench.errors import BenchError
from bench.leaderboard import read_csv
from bench.store import ScoreTable
from test_run import FAILING_PLUGIN

ROOT = Path(__file__).resolve().parent.parent
RUN = ["run", "--dataset", "digits-c", "--model", "mlp", "--seeds", "1", "--epochs", "1", "--no-progress"]

ALL_NAN = '''
import numpy as np
from bench.api import LOGITS, StreamingScorer, register

@register
class AllNaN(StreamingScorer):
    name, family, reference = "all-nan", "test", "-"
    needs = frozenset({LOGITS})
    def start(self, split, size): self.size = getattr(self, "size", {}) | {split: size}
    def update(self, batch, checkpoint): pass
    def scores(self, split): return np.full(self.size[split], np.nan)
'''


# ---------- 1. scorer parameters of the wrong type or out of range ----------

@pytest.mark.parametrize("scorers, parameter", [
    ("kde[fit_size=abc]", "fit_size=abc is not an integer or none"),
    ("kde[fit_size=-5]", "fit_size=-5 is below 1; give 1 or more, or none for every training row"),
    ("loss,kde[fit_size=-5]", "fit_size=-5 is below 1"),
    ("grand[epoch=early]", "epoch=early is not a number or none"),
], ids=["a word for an integer", "a negative size alone", "a negative size beside another scorer", "a word for an epoch"])
def test_a_scorer_parameter_of_the_wrong_type_or_range_is_an_error_not_a_traceback(tmp_path, capsys, scorers,
                                                                                    parameter):
    out = tmp_path / "out"
    assert main([*RUN, "--scorers", scorers, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench: error: scorer spec") and parameter in err and len(err.splitlines()) == 1
    assert not out.exists()  # refused before anything was computed


def numeric_parameters() -> list[tuple[str, str]]:
    """(scorer, parameter) for every number a built-in scorer takes, read from its constructor's annotations."""
    found = []
    for name in registry.builtin():
        hints = typing.get_type_hints(registry.get(name).__init__)
        for parameter in registry.get(name).defaults():
            kinds = typing.get_args(hints[parameter]) or (hints[parameter],)
            if int in kinds or float in kinds:
                found.append((name, parameter))
    return found


@pytest.mark.parametrize("name, parameter", numeric_parameters())
def test_every_number_a_builtin_scorer_takes_is_checked_for_type_and_range(name, parameter):
    default = registry.get(name).defaults()[parameter]
    written = "none" if default is None else str(default)
    assert registry.create(f"{name}[{parameter}={written}]").full_spec == registry.create(name).full_spec
    for bad in ("-1", "abc", "true"):  # out of range (every size, count and epoch is at least 0), a word, a bool
        with pytest.raises(BenchError, match=rf"{parameter}={bad} is (below|neither|not)"):
            registry.create(f"{name}[{parameter}={bad}]")


# ---------- 2. every chosen scorer fails ----------

@pytest.mark.slow
def test_a_run_in_which_every_scorer_fails_ends_in_one_error_after_writing_its_nan_rows(tmp_path, capsys, monkeypatch,
                                                                                      isolated_registry):
    """The unit keeps its failure and the leaderboard its NaN rows with the error; the command ends with one line
    that says every scorer failed and why (exit 2). A second run computes the failed score again, on the stored
    model: a failure is never a finished score, and the training is never lost."""
    plugin, out = tmp_path / "broken.py", tmp_path / "out"
    plugin.write_text(FAILING_PLUGIN)
    args = [*RUN, "--scorers", "broken", "--plugin", str(plugin), "--out", str(out)]
    assert main(args) == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert error.startswith("bench: error: every scorer failed on every seed (broken: ValueError: this plugin is broken")
    board = read_csv(out / "leaderboard.csv")
    assert set(board.scorer) == {"broken"} and board.value.isna().all()
    assert board.note.str.contains("ValueError: this plugin is broken").all()
    [path] = (out / "units").glob("*.npz")
    assert set(ScoreTable.load(path).meta["failures"]) == {"broken"}

    def no_training(*_, **__):
        raise AssertionError("the model was trained again")

    monkeypatch.setattr(unit, "train", no_training)
    assert main(args) == 2
    assert "computing again the scores that failed" in capsys.readouterr().err


# ---------- 3. NaN scores: every NaN value says why ----------

@pytest.mark.slow
@pytest.mark.parametrize("seeds", ["1", "2"])
def test_every_nan_in_the_leaderboard_of_a_plugin_with_nan_scores_says_why(tmp_path, isolated_registry, seeds):
    plugin, out = tmp_path / "all_nan.py", tmp_path / "out"
    plugin.write_text(ALL_NAN)
    assert main([*RUN, "--seeds", seeds, "--scorers", "loss,all-nan,mahalanobis", "--plugin", str(plugin),
                 "--checkpoint-at-init", "--out", str(out)]) == 0
    board = read_csv(out / "leaderboard.csv")
    unexplained = board[board.value.isna() & (board.note == "")]
    assert unexplained.empty, unexplained[["task", "scorer", "split", "seed", "metric"]].drop_duplicates("metric")
    training = len(ScoreTable.load(next((out / "units").glob("*.npz"))).splits["train"]["id"])
    cross = board[(board.task == "consistency") & (board.split == "train") & (board.metric == "spearman_with")
                  & (board.vs_scorer == "all-nan")]
    assert (cross.note == f"all-nan: {training} scores are NaN or infinite").all() and len(cross) == 2


# ---------- 4. two configs written to one --out ----------

@pytest.mark.slow
def test_a_second_config_written_to_the_same_out_keeps_the_first_leaderboard(tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*RUN, "--scorers", "loss", "--out", str(out)]) == 0
    first_board, first_config = (out / "leaderboard.csv").read_bytes(), (out / "config.toml").read_bytes()
    capsys.readouterr()
    blobs = [*RUN, "--dataset", "two-blobs", "--out", str(out)]
    assert main([*blobs, "--scorers", "loss"]) == 0
    assert "dataset digits-c (now two-blobs); kept it as leaderboard.dataset-digits-c.csv" in capsys.readouterr().err
    assert (out / "leaderboard.dataset-digits-c.csv").read_bytes() == first_board
    assert (out / "config.dataset-digits-c.toml").read_bytes() == first_config
    assert set(read_csv(out / "leaderboard.csv").dataset) == {"two-blobs"}
    assert tomllib.loads((out / "config.toml").read_text())["dataset"] == "two-blobs"
    files = sorted(path.name for path in out.iterdir())
    for scorers in ("loss", "loss,margin"):  # a rerun, then one that adds a scorer: the README's reuse, as before
        assert main([*blobs, "--scorers", scorers]) == 0
        assert "kept it as" not in capsys.readouterr().err
        assert sorted(path.name for path in out.iterdir()) == files
    assert set(read_csv(out / "leaderboard.csv").scorer) >= {"loss", "margin"}


# ---------- 5. a report when the model makes no mistake ----------

def separable(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Dark and bright 8x8 images: two classes no model gets wrong after an epoch or two."""
    labels = rng.integers(0, 2, n)
    return (np.where(labels[:, None, None] == 1, 200, 20) + rng.integers(0, 20, (n, 8, 8))).astype(np.uint8), labels


@pytest.mark.slow
def test_the_report_of_a_model_that_classifies_every_test_image_correctly(tmp_path):
    from bench.benchmark import Benchmark
    from bench.data.arrays import from_arrays

    rng = np.random.default_rng(0)
    (train, train_labels), (test, test_labels) = separable(200, rng), separable(100, rng)
    data = from_arrays("separable", train, train_labels, test, test_labels, ood={"inverted": 255 - test})
    out = tmp_path / "out"
    Benchmark(data, model="mlp", scorers=["loss", "max-softmax"], seeds=[0], epochs=3, out=str(out)).run(progress=False)
    [path] = (out / "units").glob("*.npz")
    with np.load(path) as archive:
        assert (archive["test/pred"] == archive["test/label"]).all()  # the case: no test error at all
    assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "clean test accuracy 1.000" in page and "no scorer ranks the misclassified test examples" in page


# ---------- 6. a ray:// address without the Ray client ----------

def test_a_ray_client_address_without_the_ray_client_names_the_pip_install(tmp_path, capsys, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setitem(sys.modules, "grpc", None)  # the Ray client's package, as a Ray without the client lacks it
    out = tmp_path / "out"
    assert main([*RUN, "--scorers", "loss", "--executor", "ray", "--ray-address", "ray://127.0.0.1:10001",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--ray-address ray://127.0.0.1:10001 joins through the Ray client" in err and 'pip install "ray[client]"' in err
    assert not out.exists()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(requirement.startswith("ray[client]") for requirement in extras["ray"])  # the extra installs it


# ---------- 7. --model module:callable ----------

NETWORK = """
from torch import nn

def small(input_shape, n_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(784, n_classes))
"""


@pytest.fixture
def outside_python_path(tmp_path, monkeypatch):
    """The current folder is tmp_path, which Python's path does not hold (as for the `bench` script)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path if entry not in ("", str(tmp_path))])
    yield tmp_path
    sys.modules.pop("newcomer_networks", None)


def test_a_model_as_module_callable_is_found_in_the_current_folder_or_named_with_pythonpath(outside_python_path):
    from bench.models import model_factory

    (outside_python_path / "newcomer_networks.py").write_text(NETWORK)
    factory = model_factory("newcomer_networks:small")
    assert Path(sys.modules[factory.__module__].__file__) == outside_python_path / "newcomer_networks.py"
    assert factory((1, 28, 28), 10)[-1].out_features == 10
    with pytest.raises(BenchError, match=r"no module absent_networks on Python's path \(PYTHONPATH\) nor in the "
                                         r"current folder .*give the file: path/to/absent_networks\.py:small"):
        model_factory("absent_networks:small")


# ---------- 9. a suite that depends on the machine ----------

def test_an_installed_scorer_plugin_is_not_part_of_all(tmp_path):
    """`all` is difficulty-bench's own scorers, the classes of its `scorers` package, with a plugin distribution
    installed beside it (examples/plugin-package's entry point, declared here by its metadata alone)."""
    dist = tmp_path / "bench_median_loss-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: bench-median-loss\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[bench.scorers]\nmedian-loss = bench_median_loss:MedianLoss\n")
    code = ("from bench import registry\nfrom bench.config import RunConfig\nfrom bench.plan import scorer_specs\n"
            "own = [registry.create(n).spec for n in sorted(n for n, c in registry.available().items()\n"
            "                                                  if c.__module__.startswith('scorers.'))]\n"
            "print('median-loss' in registry.available(), scorer_specs(RunConfig(scorers=['all'])) == own)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT / "examples" / "plugin-package")])}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.stdout.split() == ["True", "True"], result.stderr


def test_the_tests_see_empty_data_roots_whatever_bench_data_fetch_put_on_this_machine():
    """tests/conftest.py points BENCH_DATA and the project's datasets/ at an empty folder for every test."""
    from bench.data.dataset import PROJECT_DATA, data_roots

    [root] = data_roots()
    assert root == PROJECT_DATA == Path(os.environ["BENCH_DATA"]) and not any(root.iterdir())
    assert root != ROOT / "datasets"
