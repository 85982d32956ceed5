"""The documentation: the site builds with warnings as errors, and every code block of the README and the guide runs.

What "runs" means per language:

* ``python``: executed as written, in a fresh interpreter, in a folder holding a tiny ``bench run``'s results
  (``results/quick``: one seed, three epochs, ``vog``), for the blocks that read a run's files.
* ``bash``: every ``bench ...`` command is parsed by ``bench``'s own argument parser, so a renamed or
  misspelt flag, subcommand or choice fails here; a preset it names must exist, and so must a file of this
  repository it names (``examples/...``). The commands are not run: most train for minutes, and the README's
  ``pytest`` would run this suite. Other commands (``pip``, ``pytest``, ``python``, ``cp``, ``mkdocs``) are not
  checked; ``mkdocs build --strict`` is run by the test below it.
* ``toml``: parsed; a configuration file is also loaded by ``bench.config.load_toml``, which refuses an unknown key
  or a bad value.
* ``text``: output and diagrams, not code.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bench.cli import build_parser, main
from bench.config import RunConfig, load_toml
from bench.store import ScoreTable

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GUIDE = [ROOT / "README.md", *sorted(p for p in DOCS.rglob("*.md") if p.parent != DOCS / "leaderboards")]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.DOTALL | re.MULTILINE)
LANGUAGES = {"python", "bash", "toml", "text"}


def blocks(language: str) -> list[tuple[str, str]]:
    """(where, code) of every block of that language in the guide, each distinct block once."""
    found = {}
    for page in GUIDE:
        for match in FENCE.finditer(page.read_text()):
            if match.group(1) == language:
                where = f"{page.relative_to(ROOT)}:{page.read_text()[:match.start()].count(chr(10)) + 1}"
                found.setdefault(match.group(2), where)
    return [(where, code) for code, where in found.items()]


def ids(found: list[tuple[str, str]]) -> list[str]:
    return [where for where, _ in found]


def test_every_code_block_says_its_language():
    untagged = [f"{page.relative_to(ROOT)}: ```{match.group(1)}" for page in GUIDE
                for match in FENCE.finditer(page.read_text()) if match.group(1) not in LANGUAGES]
    assert not untagged, f"tag each block with one of {sorted(LANGUAGES)}: {untagged}"


@pytest.mark.slow
def test_the_site_builds_with_warnings_as_errors_and_the_generated_reference_is_in_it(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr
    configuration = (tmp_path / "configuration.html").read_text()
    for key in ("bootstrap_resamples", "checkpoint_unit", "state_dtype"):  # put there by docs/hooks.py
        assert f"<code>{key}</code>" in configuration
    assert "class=\"doc doc-heading\"" in (tmp_path / "reference" / "api.html").read_text()  # mkdocstrings ran


def test_each_committed_leaderboard_has_its_page_drawn_from_that_very_file():
    sys.path.insert(0, str(DOCS))
    try:
        from leaderboards import digest_line
    finally:
        sys.path.remove(str(DOCS))
    for csv in sorted((ROOT / "leaderboards").glob("*.csv.gz")):
        page = DOCS / "leaderboards" / f"{csv.name.removesuffix('.csv.gz')}.md"
        assert page.is_file(), f"{csv.name} has no page: run `python docs/leaderboards.py`"
        assert page.read_text().split("\n", 1)[0] == digest_line(csv), \
            f"{page.name} was drawn from another version of {csv.name}: run `python docs/leaderboards.py`"


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory) -> Path:
    """A folder with results/quick as a tiny `bench run` writes it, for the blocks that read a run's files."""
    folder = tmp_path_factory.mktemp("docs")
    assert main(["run", "--scorers", "vog", "--seeds", "1", "--epochs", "3", "--out",
                 str(folder / "results" / "quick"), "--no-progress"]) == 0
    return folder


def run_python(code: str, folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=folder, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=600)


def is_api_example(code: str) -> bool:
    return "Benchmark(data, model=SmallNet" in code


@pytest.mark.slow
@pytest.mark.parametrize("where, code", [b for b in blocks("python") if not is_api_example(b[1])],
                         ids=ids([b for b in blocks("python") if not is_api_example(b[1])]))
def test_a_python_block_runs_as_written(where, code, quick_results):
    done = run_python(code, quick_results)
    assert done.returncode == 0, f"{where}:\n{done.stderr}"


@pytest.mark.slow
def test_the_readmes_python_example_runs_as_written_and_writes_what_bench_run_writes(tmp_path):
    [(where, code)] = [b for b in blocks("python") if is_api_example(b[1])]
    assert where.startswith("README.md")
    done = run_python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "results" / "digits8"
    assert {p.name for p in out.iterdir()} == {"leaderboard.csv", "config.toml", "units", "checkpoints"}
    units = sorted((out / "units").glob("*.npz"))
    assert len(units) == 2
    for scorer in ("vog", "loss", "max-softmax", "kde"):
        assert scorer in done.stdout
    table = ScoreTable.load(units[0])
    assert table.meta["model"].startswith("__main__.SmallNet-") and table.meta["ood_splits"] == ["inverted"]


def commands(code: str) -> list[list[str]]:
    """The `bench ...` commands of a shell block: continuations joined, comments dropped, split at `&&`."""
    found = []
    for line in code.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        while words:
            cut = words.index("&&") if "&&" in words else len(words)
            if words[0] == "bench" or (words[0].startswith("RAY_") and words[1:2] == ["bench"]):
                found.append(words[words.index("bench") + 1:cut])
            words = words[cut + 1:]
    return found


@pytest.mark.parametrize("where, code", blocks("bash"), ids=ids(blocks("bash")))
def test_the_bench_commands_of_a_shell_block_parse(where, code):
    parser = build_parser()
    for argv in commands(code):
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"{where}: `bench {shlex.join(argv)}` does not parse (see the error above)")
        preset = getattr(args, "preset", None)
        if preset:
            assert (ROOT / "bench" / "presets" / f"{preset}.toml").is_file(), f"{where}: no preset {preset!r}"
        for word in argv:
            path = word.split(":")[0]
            if path.startswith("examples/"):
                assert (ROOT / path).exists(), f"{where}: {path} is not in the repository"


def test_the_shell_blocks_hold_bench_commands_to_check():
    """The parser above sees what a reader runs: the quick start and the run commands are among them."""
    seen = [argv for _, code in blocks("bash") for argv in commands(code)]
    assert ["run"] in seen and ["run", "--preset", "mnist-c"] in seen  # the quick start's `bench run`, MNIST-C's command


@pytest.mark.parametrize("where, code", blocks("toml"), ids=ids(blocks("toml")))
def test_a_toml_block_parses_and_a_configuration_loads(where, code, tmp_path):
    settings = tomllib.loads(code)
    if "project" in settings:  # a plugin package's pyproject.toml
        return
    (tmp_path / "study.toml").write_text(code)
    assert load_toml(tmp_path / "study.toml", RunConfig()).name == settings["name"]


def test_the_readmes_links_into_the_repository_reach_a_file():
    """MkDocs checks the site's links; the README, which GitHub shows, is checked here."""
    targets = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", (ROOT / "README.md").read_text())
    assert targets and not [target for target in targets if not (ROOT / target).exists()]


def test_the_plugin_guides_table_of_reductions_is_the_contracts():
    """Each reduction's row in docs/plugins.md says what ``bench.api.REDUCTIONS`` declares: what it computes and its
    merge, so the guide cannot drift from the contract."""
    from bench.api import REDUCTIONS

    rows = re.findall(r"^ *\| `(\w+)` \| (.+?) \| (.+?) \|$", (DOCS / "plugins.md").read_text(), re.MULTILINE)
    assert {name: (computes, merge) for name, computes, merge in rows} == {
        name: (reduction.computes, reduction.merge) for name, reduction in REDUCTIONS.items()}
