"""The registry and the three ways in: built-in modules, entry points of installed distributions, plugin files."""

import ast
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
from bench.api import FAMILIES, Signal
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
        assert scorer.needs and all(Signal(signal) == signal for signal in scorer.needs), name
        assert cls.reference, name
        assert scorer.family in FAMILIES or not cls.__module__.startswith("scorers."), name


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
    """pip-installs examples/plugin-package (its own distribution) and finds `median-loss` through its entry point."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
         str(ROOT / "examples" / "plugin-package")],
        check=True, capture_output=True,
    )
    listing = run_bench("list", "scorers", cwd=tmp_path, extra_path=target)
    assert listing.returncode == 0, listing.stderr
    assert any(line.split()[:2] == ["median-loss", "training"] for line in listing.stdout.splitlines())
    run = run_bench("run", "--scorers", "median-loss,max-softmax", "--seeds", "1", "--epochs", "1", "--out",
                    str(tmp_path / "out"), "--no-progress", cwd=tmp_path, extra_path=target)
    assert run.returncode == 0, run.stderr
    assert "median-loss" in run.stdout


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
    names = registry.load_plugin_file(ROOT / "examples" / "logit_norm.py")
    assert names == ["logit-norm"]
    assert registry.create("logit-norm").needs == {"logits"}


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

    registry.load_plugin_file(ROOT / "examples" / "logit_norm.py")
    assert "logit-norm" in registry.available() and "logit-norm" not in registry.builtin()
    assert "vog" in registry.builtin()
    assert "logit-norm" not in scorer_specs(RunConfig(scorers=["all"]))
    assert scorer_specs(RunConfig(scorers=["all", "logit-norm"]))[-1] == "logit-norm"


# ---------- one registry mechanism for scorers, datasets and models ----------

TINY = '''
import numpy as np
from torch import nn
from bench.data.arrays import from_arrays

def tiny_data(roots):
    x = np.arange(4 * 25, dtype=np.uint8).reshape(4, 5, 5)
    return from_arrays("tiny", x, np.arange(4) % 2, x, np.arange(4) % 2)

def tiny_net(input_shape, n_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(25, 3), nn.ReLU(), nn.Linear(3, n_classes))
'''


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """``install(entry_points)`` puts a distribution's metadata (``entry_points.txt``, INI text) and the module
    ``tiny_plugin`` (``TINY``) on Python's path, as pip would, and has the dataset and model registries look again."""
    from bench.data.registry import DATASETS
    from bench.models import MODELS

    def install(entry_points: str) -> None:
        dist = tmp_path / "tiny_plugin-0.1.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-plugin\nVersion: 0.1\n")
        (dist / "entry_points.txt").write_text(entry_points)
        (tmp_path / "tiny_plugin.py").write_text(TINY)
        monkeypatch.syspath_prepend(tmp_path)
        for kind in (DATASETS, MODELS):
            monkeypatch.setattr(kind, "_entries", {})
            monkeypatch.setattr(kind, "_builtin", [])
            monkeypatch.setattr(kind, "_discovered", False)

    yield install
    sys.modules.pop("tiny_plugin", None)


def test_a_dataset_and_a_model_of_an_installed_package_come_through_their_entry_points(installed):
    from bench.data import available_datasets, load_dataset
    from bench.models import MODELS, available_models, build_model

    installed("[bench.datasets]\ntiny-data = tiny_plugin:tiny_data\n[bench.models]\ntiny-net = tiny_plugin:tiny_net\n")
    assert {"tiny-data", "digits-c", "npz:PATH"} <= set(available_datasets())
    assert {"tiny-net", "mlp", "lenet"} <= set(available_models())
    assert "tiny-net" not in MODELS.builtin() and "mlp" in MODELS.builtin()  # difficulty-bench's own entry points
    dataset = load_dataset("tiny-data")
    assert (dataset.name, dataset.n_classes, dataset.input_shape) == ("tiny", 2, (1, 5, 5))
    assert build_model("tiny-net", dataset.input_shape, 2).head.out_features == 2


def test_a_plugin_that_takes_a_builtin_name_or_does_not_load_is_skipped_with_a_warning(installed):
    from bench.models import available_models, build_model

    installed("[bench.models]\nmlp = tiny_plugin:tiny_net\nbroken = tiny_plugin:absent\n")
    with pytest.warns(UserWarning) as caught:
        names = available_models()
    messages = sorted(str(warning.message) for warning in caught)
    assert len(messages) == 2 and "'broken'" in messages[0] and "AttributeError" in messages[0]
    assert "'mlp'" in messages[1] and "the name 'mlp' is taken by another model" in messages[1]
    assert "broken" not in names and type(build_model("mlp", (1, 5, 5), 2)).__name__ == "MLP"  # the built-in stays


def test_a_dataset_and_a_model_from_one_plugin_file_are_loaded_by_the_same_loader(tmp_path):
    from bench.data import load_dataset
    from bench.data.registry import DATASETS
    from bench.models import build_model, model_factory

    plugin = tmp_path / "mine.py"
    plugin.write_text(TINY)
    dataset = load_dataset(f"{plugin}:tiny_data")
    assert dataset.name == "tiny" and len(dataset.train) == 4
    model = build_model(f"{plugin}:tiny_net", dataset.input_shape, 2)
    assert model.head.in_features == 3
    modules = {DATASETS.reference(f"{plugin}:tiny_data").__module__, model_factory(f"{plugin}:tiny_net").__module__}
    assert modules == {"bench_plugin_mine"}


def test_a_plugin_file_that_fails_names_its_line_for_every_kind(tmp_path, isolated_registry):
    from bench.data import load_dataset
    from bench.models import build_model

    plugin = tmp_path / "bad.py"
    plugin.write_text("import math\n\nmath.sqrt(-1)\n")
    expected = r"could not be imported \(ValueError at line 3: math domain error\); fix it"
    with pytest.raises(BenchError, match=rf"dataset '{re.escape(str(plugin))}:x' could not be loaded: .*{expected}"):
        load_dataset(f"{plugin}:x")
    with pytest.raises(BenchError, match=rf"model '{re.escape(str(plugin))}:x' could not be loaded: .*{expected}"):
        build_model(f"{plugin}:x", (1, 5, 5), 2)
    with pytest.raises(BenchError, match=expected):
        registry.load_plugin_file(plugin)


def test_an_unknown_name_of_any_kind_is_refused_with_the_closest_ones():
    from bench.data import load_dataset
    from bench.models import build_model

    with pytest.raises(BenchError, match=r"unknown dataset 'mnist-cc'; did you mean mnist-c"):
        load_dataset("mnist-cc")
    with pytest.raises(BenchError, match=r"unknown dataset 'npx:data.npz'; did you mean npz"):
        load_dataset("npx:data.npz")  # a mistyped NAME:PATH, not a module:callable
    with pytest.raises(BenchError, match=r"unknown model 'lenett'; did you mean lenet"):
        build_model("lenett", (1, 28, 28), 10)


def bench_imports() -> dict[str, set[str]]:
    """Every module of bench/ -> the modules of bench/ it names in an import, at any depth of its code (a function's
    imports too). ``from P import x`` names the module P.x where x is one, else P itself (its ``__init__``)."""
    files = {".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
             for path in (ROOT / "bench").rglob("*.py")}
    graph = {}
    for module, path in files.items():
        named = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                named.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                submodules = {f"{node.module}.{alias.name}" for alias in node.names} & files.keys()
                named |= submodules if len(submodules) == len(node.names) else submodules | {node.module}
        graph[module] = (named & files.keys()) - {module}
    return graph


def test_imports_in_bench_run_one_way():
    """No circle of imports, however deep in a function an import stands; in particular no module imports a package
    whose ``__init__`` imports it back (in bench/data, the loaders import bench.data.dataset, and
    bench/data/__init__.py only hands names on)."""
    graph = bench_imports()

    def reached(start):
        seen, todo = set(), [start]
        while todo:
            for module in graph[todo.pop()] - seen:
                seen.add(module)
                todo.append(module)
        return seen

    assert "bench.data" in graph["bench.runner"] and "bench.data.corruptions" in graph["bench.data.colour"]  # it reads
    back = sorted(f"{module} -> {package}" for module, imports in graph.items() for package in imports
                  if module.startswith(f"{package}.") and module in reached(package))
    assert back == [], "a module imports its package, whose __init__ imports it back"
    assert sorted(module for module in graph if module in reached(module)) == []
