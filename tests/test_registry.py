"""The registry and the three ways in: built-in modules, entry points of installed distributions, plugin files."""

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import bench
from bench import registry
from bench.api import SIGNALS
from bench.errors import BenchError
from bench.specs import parse_spec, split_specs

ROOT = Path(__file__).resolve().parent.parent


def test_spec_parsing_reads_literals_and_keeps_bracketed_commas():
    assert parse_spec("vog[norm=z, target=prob]") == ("vog", {"norm": "z", "target": "prob"})
    assert parse_spec("kde[bandwidth=0.5]") == ("kde", {"bandwidth": 0.5})
    assert parse_spec("x[n=3,flag=true]") == ("x", {"n": 3, "flag": True})
    assert split_specs("vog[norm=z,target=prob], kde,max-softmax") == [
        "vog[norm=z,target=prob]", "kde", "max-softmax"]


def test_none_is_none_only_for_parameters_that_are_not_strings():
    assert registry.create("kde[fit_size=none]").fit_size is None
    assert registry.create("vog[norm=none]").norm == "none"


def test_spec_names_only_non_default_parameters_in_constructor_order():
    assert registry.create("vog[norm=none]").spec == "vog"
    assert registry.create("vog[target=logit,norm=z]").spec == "vog[norm=z,target=logit]"


def test_unknown_scorer_suggests_the_closest_names():
    with pytest.raises(BenchError, match="did you mean vog"):
        registry.get("vgo")


def test_unknown_parameter_lists_the_allowed_ones():
    with pytest.raises(BenchError, match=r"no parameter windows.*window='late', norm='none'"):
        registry.create("vog[windows=late]")


def test_builtin_scorers_declare_their_metadata():
    scorers = registry.available()
    assert {"vog", "action-score", "max-softmax", "kde"} <= set(scorers)
    for name, cls in scorers.items():
        scorer = cls()
        assert scorer.needs and scorer.needs <= set(SIGNALS), name
        assert cls.family and cls.reference, name


def test_builtin_scorers_come_through_the_entry_point_group_as_plugins_do():
    modules = {entry.value for entry in importlib.metadata.entry_points(group=registry.ENTRY_POINT_GROUP)}
    assert {"scorers.vog", "scorers.dynamics", "scorers.gradients", "scorers.detectors"} <= modules
    assert "import scorers" not in (ROOT / "bench" / "registry.py").read_text()


def test_a_changed_builtin_default_bumps_the_version():
    """Results name a scorer by its short spec; a default that changes under the same version would let
    two methods pass as one. Record the defaults of a new version in tests/builtin_defaults.json."""
    recorded = json.loads((ROOT / "tests" / "builtin_defaults.json").read_text())
    builtins = {name: cls().full_spec for name, cls in registry.available().items() if cls.__module__.startswith("scorers.")}
    assert bench.__version__ in recorded, f"record the built-in defaults of version {bench.__version__}"
    changed = {name for name in builtins.keys() | recorded[bench.__version__].keys()
               if builtins.get(name) != recorded[bench.__version__].get(name)}
    assert not changed, f"the defaults of {sorted(changed)} changed under version {bench.__version__}: bump the version"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{bench.__version__}"' in pyproject


def run_bench(*args, cwd, extra_path=None):
    env = dict(os.environ)
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.mark.slow
def test_scorer_from_a_separately_installed_distribution(tmp_path):
    """pip-installs examples/plugin-package (its own distribution) and finds `energy` through its entry point."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
         str(ROOT / "examples" / "plugin-package")],
        check=True, capture_output=True,
    )
    listing = run_bench("list", "scorers", cwd=tmp_path, extra_path=target)
    assert listing.returncode == 0, listing.stderr
    assert any(line.split()[:2] == ["energy", "confidence"] for line in listing.stdout.splitlines())
    run = run_bench("run", "--scorers", "energy,max-softmax", "--seeds", "1", "--epochs", "1", "--out",
                    str(tmp_path / "out"), "--no-progress", cwd=tmp_path, extra_path=target)
    assert run.returncode == 0, run.stderr
    assert "energy" in run.stdout


def test_broken_entry_point_is_skipped_with_a_warning(tmp_path):
    """A distribution whose plugin fails to import must not take the harness down."""
    dist = tmp_path / "broken_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[bench.scorers]\nbroken = broken_plugin_module:Missing\n")
    listing = run_bench("list", "scorers", cwd=tmp_path, extra_path=tmp_path)
    assert listing.returncode == 0
    assert "'broken'" in listing.stderr and "skipped" in listing.stderr
    assert "vog" in listing.stdout


def test_plugin_file_registers_its_scorers(isolated_registry):
    names = registry.load_plugin_file(ROOT / "examples" / "max_logit.py")
    assert names == ["max-logit"]
    assert registry.create("max-logit").needs == {"logits"}


def test_missing_plugin_file_is_a_clear_error(tmp_path):
    with pytest.raises(BenchError, match="does not exist"):
        registry.load_plugin_file(tmp_path / "nope.py")


@pytest.mark.parametrize("source, expected", [
    ("def broken(:\n", r"\(SyntaxError at line 1: .*\); fix it, or run without --plugin"),
    ("import math\n\nmath.sqrt(-1)\n", r"\(ValueError at line 3: math domain error\); fix it, or run without --plugin"),
])
def test_a_plugin_file_that_fails_to_import_is_named_with_its_line(tmp_path, isolated_registry, source, expected):
    plugin = tmp_path / "mine.py"
    plugin.write_text(source)
    with pytest.raises(BenchError, match=expected):
        registry.load_plugin_file(plugin)
    assert "bench_plugin_mine" not in sys.modules


def test_a_grid_spec_expands_into_every_combination_named_by_its_non_default_parameters(tmp_path):
    from bench.config import RunConfig, load_toml
    from bench.plan import scorer_specs

    grid = "vog[window=early|late|all,norm=none|z|abs-z]"
    specs = scorer_specs(RunConfig(scorers=[grid, "loss"]))
    assert len(specs) == 10 and specs[-1] == "loss"
    assert specs[:4] == ["vog[window=early]", "vog[window=early,norm=z]", "vog[window=early,norm=abs-z]", "vog"]
    assert "vog[window=all]" in specs and "vog[norm=abs-z]" in specs  # window=late, the default, is not named
    from_cli = scorer_specs(RunConfig(scorers=split_specs(f"{grid},loss")))
    config = tmp_path / "grid.toml"
    config.write_text(f'scorers = ["{grid}", "loss"]\n')
    assert from_cli == specs == scorer_specs(load_toml(config))


@pytest.mark.parametrize("grid, expected", [
    ("grand[epoch=1|2|none]", ["grand", "grand[epoch=2]", "grand[epoch=none]"]),
    ("kde[fit_size=500|1000,features=pixels|embedding]",
     ["kde[fit_size=500]", "kde[features=embedding,fit_size=500]", "kde", "kde[features=embedding]"]),
    ("oga[detector=l1|l2]", ["oga[detector=l1]", "oga[detector=l2]"]),
])
def test_grids_work_for_any_scorers_parameters(grid, expected):
    from bench.config import RunConfig
    from bench.plan import scorer_specs

    assert scorer_specs(RunConfig(scorers=[grid])) == expected


@pytest.mark.parametrize("grid, message", [
    ("vog|kde", "'|' separates the values of one parameter inside the brackets"),
    ("vog[window=early|middle]", "window='middle' is not one of all, early, late"),
])
def test_bad_grids_are_refused_with_the_fix(grid, message):
    from bench.config import RunConfig
    from bench.plan import scorer_specs

    with pytest.raises(BenchError, match=re.escape(message)):
        scorer_specs(RunConfig(scorers=[grid]))


def test_all_means_the_builtin_scorers_and_a_plugin_runs_when_named(isolated_registry):
    from bench.config import RunConfig
    from bench.plan import scorer_specs

    registry.load_plugin_file(ROOT / "examples" / "max_logit.py")
    assert "max-logit" in registry.available() and "max-logit" not in registry.builtin()
    assert "vog" in registry.builtin()
    assert "max-logit" not in scorer_specs(RunConfig(scorers=["all"]))
    assert scorer_specs(RunConfig(scorers=["all", "max-logit"]))[-1] == "max-logit"
