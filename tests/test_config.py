"""Settings: presets, TOML files and flags, and the messages bad settings get."""

import re
from pathlib import Path

import pytest

from bench.config import RunConfig, available_presets, load_preset, load_toml, parse_seeds
from bench.errors import BenchError


@pytest.mark.parametrize("name", available_presets())
def test_every_shipped_preset_passes_the_checks_a_run_makes_before_reading_data(name):
    """Its keys are known and its values valid (loading checks them), its scorer specs build, its model and
    datasets are registered, and its results go to a folder of its own name."""
    from bench.data import available_datasets
    from bench.models import model_factory
    from bench.plan import scorer_specs

    config = load_preset(name)
    assert scorer_specs(config)
    model_factory(config.model)
    assert {config.dataset, *config.ood} <= set(available_datasets())
    assert config.out_dir == Path("results", name)


def test_flags_override_the_file_and_none_means_unset(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text('scorers = ["vog"]\nepochs = 4\n')
    config = load_toml(path).updated(epochs=7, model=None)
    assert (config.scorers, config.epochs, config.model) == (["vog"], 7, "lenet")


@pytest.mark.parametrize("text, message", [
    ("epochs = \"ten\"", "'epochs' must be int"),
    ("epochs = 0", "'epochs' must be at least 1"),
    ("seeds = []", "'seeds' is empty"),
    ("seeds = [1, 1]", "repeats a seed"),
    ("scorers = [3]", "'scorers' must be list[str]"),
    ("lr = true", "'lr' must be float"),
    ("epochs = ", "not valid TOML"),
])
def test_bad_values_are_named_with_the_fix(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n")
    with pytest.raises(BenchError, match=re.escape(message)):
        load_toml(path)


def test_unknown_preset_lists_the_available_ones():
    with pytest.raises(BenchError, match="available: .*quick"):
        load_preset("quik")


def test_config_hash_ignores_seeds_and_output_but_not_training():
    base = RunConfig()
    specs, source = {"vog": "vog[window=all,norm=none]"}, "digits"
    assert base.config_hash(specs, source) == RunConfig(seeds=[5], out="elsewhere", device="cpu").config_hash(specs, source)
    assert base.config_hash(specs, source) != RunConfig(epochs=3).config_hash(specs, source)
    assert base.config_hash(specs, source) != RunConfig(label_noise=0.1).config_hash(specs, source)
    assert base.config_hash(specs, source) != base.config_hash({"vog[norm=z]": "vog[window=all,norm=z]"}, source)
    assert base.config_hash(specs, source) != base.config_hash({"vog": "vog[window=all,norm=z]"}, source)  # a new default
    assert base.config_hash(specs, source) != base.config_hash(specs, "other data")


@pytest.mark.parametrize("text, seeds", [("3", [0, 1, 2]), ("0,4,7", [0, 4, 7]), ("5-7", [5, 6, 7]), ("7-7", [7])])
def test_seed_syntax(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["0", "x", "3-1"])
def test_seed_syntax_without_seeds_is_refused(text):
    with pytest.raises(ValueError, match="gives no seeds"):
        parse_seeds(text)


def test_values_are_checked_against_the_annotated_types():
    from bench.config import _is

    assert _is(3, float) and _is(0.5, float) and not _is(True, float) and not _is("3", float)
    assert _is([1, 2], list[int]) and not _is([1, True], list[int]) and not _is((1, 2), list[int])
    assert _is(False, bool) and not _is(0, bool)


def test_the_settings_written_with_a_run_read_back_as_the_same_config(tmp_path):
    config = RunConfig(name="study", scorers=["vog[window=early|late]", "kde"], seeds=[0, 4], lr=0.5, label_noise=0.2)
    path = tmp_path / "config.toml"
    path.write_text(config.to_toml())
    assert load_toml(path) == config


def test_a_config_crosses_to_a_worker_and_back_as_the_same_config():
    """The Ray executor ships the plan with its config by pickling's protocol (``__reduce_ex__``), which
    ``copy.deepcopy`` runs too without pickle's bytes; the flat keys are read through the sections."""
    import copy

    config = RunConfig(epochs=3, seeds=[4], corruptions=["fog"])
    again = copy.deepcopy(config)
    assert again == config and again.epochs == again.recipe.epochs == 3 and again.corruptions == ["fog"]
