"""The settings' schema: every key reaches every place it is written, and the hashes keep 0.6.0's identity."""

import contextlib
import functools
import hashlib
import inspect
import io
import json
import tomllib
import typing
from pathlib import Path

import pandas as pd
import pytest
import tomli_w

from bench import cli
from bench.benchmark import Benchmark
from bench.errors import BenchError
from bench.config import NAMED_ALWAYS, SECTIONS, RunConfig, load_toml, options, reference_markdown
from bench.plan import Plan

ROOT = Path(__file__).resolve().parents[1]
KEYS = [option.name for _, option, _ in options()]


def changed(key: str) -> tuple[object, str]:
    """A value of ``key`` other than its default that its checks accept, and how a flag writes it."""
    kind, default = typing.get_type_hints(SECTIONS[section_of(key)])[key], getattr(RunConfig(), key)
    if kind is bool:
        return not default, ""
    if typing.get_origin(kind) is typing.Literal:
        value = next(choice for choice in typing.get_args(kind) if choice != default)
        return value, value
    if kind is int:
        return default + 2, str(default + 2)
    if kind is float:
        return default + 0.25, str(default + 0.25)
    if kind is str:
        return "x-y", "x-y"
    if kind == list[int]:  # seeds and optimizer steps
        return [1, 4], "1,4"
    if key == "ood_kind":
        return ["svhn=far", "tin=near"], "svhn=far,tin=near"
    return ["fog", "snow"], "fog,snow"  # names of corruptions, so that the corruptions' check passes too


@functools.cache
def run_help() -> str:
    with contextlib.redirect_stdout(io.StringIO()) as out, pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    return out.getvalue()


def section_of(key: str) -> str:
    return next(name for name, cls in SECTIONS.items() if key in cls.__dataclass_fields__)


def test_every_key_is_in_exactly_one_section_and_every_section_is_in_the_reference():
    assert len(KEYS) == len(set(KEYS)) and set(KEYS) == set(RunConfig().flat())
    assert all(f"| {name} |" in reference_markdown() for name in SECTIONS)


@pytest.mark.parametrize("key", KEYS)
def test_a_key_is_a_flag_a_toml_key_a_python_keyword_and_a_row_of_the_reference(key, tmp_path):
    value, text = changed(key)
    flag = f"--{key.replace('_', '-')}"
    # the flag, in the help of its section
    flags = [flag if value is True else f"--no-{flag[2:]}"] if isinstance(value, bool) else [flag, text]
    args = cli.build_parser().parse_args(["run", *flags])
    assert getattr(args, key) == value
    assert RunConfig().updated(**{k: getattr(args, k) for k in KEYS}).flat()[key] == value
    section = run_help().split(f"\n{section_of(key)}:\n", 1)[1].split("\n\n", 2)[1]  # the lines under its heading
    assert flag in section
    # the TOML key, read and written
    path = tmp_path / "study.toml"
    path.write_text(tomli_w.dumps({key: value}))
    config = load_toml(path)
    assert getattr(config, key) == value and getattr(getattr(config, section_of(key)), key) == value
    assert tomllib.loads(config.to_toml())[key] == value
    # the Python keyword, with the schema's default
    default = inspect.signature(Benchmark).parameters[key].default
    assert (list(default) if isinstance(default, tuple) else default) == ("notebook" if key == "name" else
                                                                          getattr(RunConfig(), key))
    assert getattr(Benchmark(**{key: value}).config, key) == value
    # the reference row
    assert any(line.startswith(f"| {section_of(key)} | `{key}` |") and f"`{flag}`" in line
               for line in reference_markdown().splitlines())


def test_every_flag_of_bench_run_is_a_key_of_the_schema_or_says_how_to_run():
    dests = set(vars(cli.build_parser().parse_args(["run"])))
    assert dests == {*KEYS, "command", "preset", "config", "executor", "ray_address", "no_progress"}


def test_bench_run_passes_the_config_it_built_to_the_runner(monkeypatch, tmp_path):
    """One path: the preset updated by the flags, as one object, no rebuilding from flattened keys."""
    from bench import runner

    seen = []

    def record(config, *args):
        seen.append(config)
        raise BenchError("recorded")

    monkeypatch.setattr(runner, "run", record)
    assert cli.main(["run", "--epochs", "3", "--seeds", "5-6", "--no-amp", "--momentum", "0.5", "--name", "mine",
                     "--out", str(tmp_path)]) == 2
    [config] = seen
    from bench.config import load_preset

    assert config == load_preset("quick").updated(epochs=3, seeds=[5, 6], amp=False, momentum=0.5, name="mine",
                                                  out=str(tmp_path))


def test_a_flat_config_toml_written_by_0_6_0_reads_back_with_its_values(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('name = "quick"\ndataset = "digits-c"\ndata_dir = ""\nlabel_noise = 0.0\ntrain_size = 0\nood = []\n'
                    'corruptions = [\n    "all",\n]\nmodel = "lenet"\nscorers = [\n    "all",\n    "vog[window=early|all]",\n]\n'
                    'seeds = [\n    0,\n]\nepochs = 2\nbatch_size = 32\nlr = 0.03\nmomentum = 0.9\nweight_decay = 0.0005\n'
                    'checkpoint_every = 1\ncheckpoint_unit = "epoch"\ncheckpoint_at_init = false\noptimizer = "sgd"\n'
                    'schedule = "constant"\naugment = "none"\nnormalize = false\namp = false\nlabel_mode = "predicted"\n'
                    'probe_batch_size = 256\nbootstrap_resamples = 1000\nstate_dtype = "float64"\ndevice = "auto"\n'
                    'threads = 0\nout = "/tmp/x"\nplugins = []\n')
    assert load_toml(path) == RunConfig(name="quick", scorers=["all", "vog[window=early|all]"], seeds=[0], epochs=2,
                                        out="/tmp/x")


# ---------- the hashes ----------

SPECS = {"vog": "vog[window=late,norm=none]", "loss": "loss"}


def old_digest(values: dict) -> str:
    """How bench 0.6.0 hashed its settings."""
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:12]


def test_the_hashes_of_the_defaults_are_those_bench_0_6_0_computed():
    training = {"bench_version": "0.6.0", "dataset": "digits-c", "data_source": "src", "label_noise": 0.0,
                "model": "lenet", "epochs": 10, "batch_size": 32, "lr": 0.03, "momentum": 0.9, "weight_decay": 0.0005,
                "checkpoint_every": 1}
    unit = {**training, "label_mode": "predicted", "scorers": {"loss": "loss", "vog": "vog[window=late,norm=none]"}}
    assert RunConfig().training_hash("src") == old_digest(training)
    assert RunConfig().config_hash(SPECS, "src") == old_digest(unit)


def test_the_hashes_of_changed_settings_are_those_bench_0_6_0_computed():
    """0.6.0 named train_size, the recipe's and the probe's keys and the corruptions only when changed."""
    config = RunConfig(dataset="mnist", train_size=2000, label_noise=0.2, epochs=100, lr=0.1, weight_decay=0.0,
                       optimizer="adamw", schedule="cosine", checkpoint_at_init=True, checkpoint_unit="step",
                       amp=True, normalize=True, augment="crop-flip", label_mode="true", probe_batch_size=64,
                       state_dtype="float32", corruptions=["snow", "fog", "snow"], seeds=[7], threads=2,
                       bootstrap_resamples=0, out="elsewhere", name="study", device="cpu", data_dir="/data")
    training = {"bench_version": "0.6.0", "dataset": "mnist", "data_source": "src", "label_noise": 0.2,
                "train_size": 2000, "model": "lenet", "epochs": 100, "batch_size": 32, "lr": 0.1, "momentum": 0.9,
                "weight_decay": 0.0, "checkpoint_every": 1, "checkpoint_at_init": True, "checkpoint_unit": "step",
                "optimizer": "adamw", "schedule": "cosine", "augment": "crop-flip", "amp": True, "normalize": True}
    unit = {**training, "label_mode": "true", "probe_batch_size": 64, "state_dtype": "float32",
            "corruptions": ["fog", "snow"], "scorers": {"loss": "loss", "vog": "vog[window=late,norm=none]"}}
    assert config.training_hash("src") == old_digest(training)
    assert config.config_hash(SPECS, "src") == old_digest(unit)


def test_a_unit_and_checkpoints_cached_by_0_6_0_are_the_files_the_plan_reads(tmp_path):
    config = RunConfig(epochs=2, seeds=[0], out=str(tmp_path))
    training = {"bench_version": "0.6.0", "dataset": "digits-c", "data_source": "src", "label_noise": 0.0,
                "model": "lenet", "epochs": 2, "batch_size": 32, "lr": 0.03, "momentum": 0.9, "weight_decay": 0.0005,
                "checkpoint_every": 1}
    unit = {**training, "label_mode": "predicted", "scorers": {"loss": "loss", "vog": "vog[window=late,norm=none]"}}
    plan = Plan(config, "digits-c", "src", "src", SPECS)
    assert plan.unit_path(0) == tmp_path / "units" / f"digits-c_lenet_seed0_{old_digest(unit)}.npz"
    assert plan.checkpoints_path(0) == tmp_path / "checkpoints" / f"digits-c_lenet_seed0_{old_digest(training)}.npz"
    assert plan.unit_config == unit  # what a cached unit's meta holds, compared to find its reusable columns


@pytest.mark.parametrize("key", KEYS)
def test_a_key_changes_the_hashes_it_declares_and_no_other(key):
    """A new key at its default keeps every hash; changed, it changes the hash of what it changes."""
    value, _ = changed(key)
    option = next(option for _, option, _ in options() if option.name == key)
    base, other = RunConfig(), RunConfig().updated(**{key: value})
    training_changes = base.training_hash("src") != other.training_hash("src")
    scores_change = base.config_hash(SPECS, "src") != other.config_hash(SPECS, "src")
    assert (training_changes, scores_change) == {"training": (True, True), "scores": (False, True),
                                                 None: (False, False)}[option.metadata["hashed"]]
    if key != "scorers":  # hashed as the plan's full specs
        assert (key in base.unit_config(SPECS, "src")) == (key in NAMED_ALWAYS)


@pytest.mark.slow
def test_the_quick_preset_has_the_config_hash_of_the_committed_digits_c_leaderboard():
    """The committed leaderboard's config_hash keeps naming the settings that made it (README: `bench run`): the quick
    preset with the scorers it holds, which are all among the preset's (later versions add built-ins)."""
    from bench.config import load_preset
    from bench.data import load_dataset
    from bench.plan import make_plan, scorer_specs

    config = load_preset("quick")
    board = pd.read_csv(ROOT / "leaderboards" / "digits-c.csv.gz", usecols=["config_hash", "scorer"], dtype=str)  # 0.6.0
    assert set(board.scorer) <= set(scorer_specs(config))
    specs = [spec for spec in scorer_specs(config) if spec in set(board.scorer)]
    plan = make_plan(config, load_dataset(config.dataset, config.data_dir, config.corruptions), specs)
    assert set(board.config_hash) == {plan.config_hash}
