"""The ``bench`` command line."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from bench.config import OPENMP_SPINS, SECTION_HELP, RunConfig, flag_names, from_text, options
from bench.errors import BenchError
from bench.schema import BETTER, CAPTIONS

DESCRIPTION = """\
difficulty-bench: which examples are hard, mislabeled or out of distribution, which
scoring method finds them best, and how far to trust the ranking.

`bench run` trains the models itself, computes every score at every checkpoint, and writes
per-example score tables and a leaderboard CSV. With no arguments it runs the quick
benchmark on the embedded digits-c dataset (its time on two CPU cores: README, Quick start)."""

RUN_DESCRIPTION = """\
Train a model per seed, score every example of every split at every checkpoint with the
chosen scorers, then evaluate the scores on these tasks:
  ood          clean test split against each OoD split (corruptions, --ood datasets): AUROC,
               AUPR-In, AUPR-Out, FPR@95TPR, with means per kind and severity
  mislabel     with --label-noise: find the shuffled training labels (AUROC, AP, P@k, Welch t)
  difficulty   test error by score decile, error AUROC, the early/late training flip
  boundary     on two-blobs: Spearman with the nearness to the Bayes boundary (the VoG toy)
  consistency  agreement between seeds (split-half, Spearman-Brown) and between scorers
  cost         seconds and running-state bytes per scorer"""

RUN_EPILOG = """\
examples:
  bench run                                   the quick preset: digits-c, LeNet-5, 3 seeds
  bench run --scorers vog,kde --seeds 5       five seeds, two scorers
  bench run --scorers "vog[norm=z],max-softmax" --epochs 10
  bench run --scorers "vog[window=early|late,norm=none|z]"   a grid: four VoG variants
  bench run --config my-study.toml --out results/my-study
  bench run --plugin my_scorer.py --scorers my-score
  bench run --preset mnist-c --executor ray   each seed a Ray task (pip install -e ".[ray]")
  bench run --preset vog-protocol             VoG's protocol choices as a 60-variant grid on MNIST-C
  bench run --preset toy-boundary             the VoG paper's Fig. 1: two 2-D blobs, 16 s
  bench run --dataset patches --ood textures --model mlp   colour images, another dataset as OoD

Settings are read in this order, later ones winning: the defaults, the preset (or the
--config file), then the flags. Finished units (one per seed) are reused from the results
folder, so a second run with the same settings only recomputes the tables, a run with other
scorers trains nothing (the stored checkpoints are probed for the new scorers alone), and an
interrupted run started again redoes only the unfinished unit.

results:
  <out>/leaderboard.csv     tidy rows: dataset, model, task, split, scorer, label_mode,
                            seed, metric, value, note, and the run's provenance
  <out>/units/*.npz         per-example scores of each unit (numpy.load; see README)
  <out>/checkpoints/*.npz   the model at every checkpoint of each seed's training
  <out>/config.toml         the settings that produced them

then: `bench show <out>/leaderboard.csv`, `bench report <out>`, `bench compare A.csv B.csv`"""

SCORE_DESCRIPTION = """\
Score the checkpoints of a model you trained (your loop, Lightning, a pretrained network)
instead of training one: the same scorers, tasks, leaderboard and score tables as
`bench run`. --model is the factory of the network the weights fit (module:callable or
path/to/file.py:callable, called with (input_shape, n_classes)); --checkpoints names one
source per training run, each a unit of its own:
  a folder        its checkpoints.json manifest, else every .pt/.pth/.bin/.ckpt/.safetensors
                  file in it, the epoch read from each name (epoch=3.pt: 3 epochs done;
                  Lightning's epoch=3-step=1560.ckpt counts from 0: 4 epochs done)
  a manifest      checkpoints.json, each file's epoch, and its step and learning rate
  a glob or file  'run/*.pt'; one file alone is the final (or a pretrained) model

A scorer that needs what the checkpoints lack (a score over training from one checkpoint,
GraNd at initialisation without the epoch-0 checkpoint, TracIn without learning rates) is
skipped, with the reason in the leaderboard's note. A unit is named by the checkpoints'
content digest: the same files give the same unit wherever they lie."""

SCORE_EPILOG = """\
examples:
  bench score --model my_net.py:Net --dataset cifar10 --checkpoints runs/a
  bench score --model my_net.py:Net --dataset cifar10 --checkpoints runs/a,runs/b,runs/c
  bench score --model my_net.py:Net --dataset cifar10 --ood cifar100 --checkpoints final.pt
  bench score --model lenet --dataset mnist --checkpoints "lightning_logs/version_0/checkpoints/*.ckpt"

The network takes the dataset's images as bench loads them (pixels in [0, 1]); put the
normalisation your training used inside the factory's network, or give --normalize for
the harness's per-channel standardisation."""

SHOW_DESCRIPTION = """\
Print a leaderboard CSV as one table per task and protocol (dataset / model / label mode):
a row per scorer, the task's headline metrics as mean ± std, best first, and why a value
is NaN. OoD cells read "mean ± std over corruptions (std over seeds)".

example:
  bench show leaderboards/mnist-c.csv.gz --task ood --by-family"""

COMPARE_DESCRIPTION = """\
Join two leaderboards on dataset, model, task, split, scorer and its full spec (every
parameter), label mode, seed and metric, and print both values and the delta (B - A) of the
headline metrics. Protocols (dataset,
model, label mode) present in one file only are listed, never joined to another protocol;
when the two share none, compare stops with an error."""

COMPARE_EPILOG = """\
examples:
  bench compare leaderboards/digits-c.csv.gz results/quick/leaderboard.csv
  bench compare old.csv new.csv --fail-if-drops auroc=0.01 --fail-if-drops fpr95=0.02
  bench compare old.csv new.csv --fail-if-worse auroc --alpha 0.01

--fail-if-drops and --fail-if-worse check every joined row over all seeds (seed=all) with
that metric, in every task and split that has it; "worse" means lower, except for fpr95,
welch_p and runs_for_0.9, where it means higher. A row fails only when it is worse by more
than the tolerance AND the difference is beyond the noise of both files: p, Welch's test on
the per-seed values (or, with one seed, a z-test from the two 95% intervals), adjusted over
the checked rows by Holm's method (--correction bh: Benjamini-Hochberg), at most --alpha
(default 0.05). --alpha 1 gives the raw tolerance. Exit status: 0 fine, 1 a drop, 2 an error."""

MERGE_DESCRIPTION = """\
Stack leaderboards into one CSV, e.g. the two label modes of one study, or several datasets:
every row is kept as it is, with its provenance; a row measured in two of the files (the same
dataset, model, task, split, scorer and full spec, label mode, seed and metric) is an error.

example:
  bench merge results/vog-protocol/leaderboard.csv results/vog-protocol-true/leaderboard.csv \\
      --out vog-protocol.csv"""

REPORT_DESCRIPTION = """\
Write one self-contained HTML file (images inline, no server needed) from a results folder:
the summary tables, the ranks and paired tests, quality against cost, an AUROC heatmap of
scorer x corruption, test error by score decile, the early/late flip, scores against the
distance to the Bayes boundary (two-blobs), the seed and scorer correlation heatmaps, and the
test images scored lowest and highest, for each class, by the scorer with the best error AUROC."""


DATA_DESCRIPTION = """\
Data files live in the data roots, searched in order: --data-dir, $BENCH_DATA, then
datasets/ at the project root; what bench writes goes to the first of them.

examples:
  bench data fetch mnist                      download and MD5-check the four MNIST files
  bench data fetch mnist --from ~/mnist       copy them from a folder instead
  bench data verify                           which file is wrong, and why
  bench data build mnist-c                    generate the 15 corrupted test splits
  bench data show mnist-c                     mnist-c-corruptions.png: digits under every corruption
  bench run --dataset idx:~/fashion-mnist     any folder of the four idx files is a dataset"""


def parse_tolerances(items: list[str]) -> dict[str, float]:
    """``["auroc=0.01", "fpr95=0.02"]`` -> {metric: tolerance}, for metrics with a better direction."""
    tolerances = {}
    for item in items:
        metric, sep, tolerance = item.partition("=")
        if metric not in BETTER:
            raise BenchError(f"--fail-if-drops {item!r}: {metric!r} has no better direction to drop from; "
                             f"use one of {', '.join(sorted(BETTER))}")
        try:
            tolerances[metric] = float(tolerance) if sep else 0.0
        except ValueError:
            raise BenchError(f"--fail-if-drops {item!r}: the tolerance must be a number, as in auroc=0.01") from None
    return tolerances


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """A flag for every key of the schema (``bench.config``), a group per section: its help, its choices; booleans as
    ``--x``/``--no-x``, lists comma-separated (a repeated flag's last value wins, as argparse's do). Unset flags are
    None."""
    groups = {section: parser.add_argument_group(section, text) for section, text in SECTION_HELP.items()}
    for section, option, kind in options():
        help = option.metadata["help"].replace("%", "%%")  # argparse formats help with %
        settings: dict[str, Any] = {"dest": option.name, "default": None, "help": help}
        if kind is bool:
            settings["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is typing.Literal:
            settings["choices"] = typing.get_args(kind)
        else:
            settings["metavar"] = option.metadata["metavar"]
            settings["type"] = flag_parser(option, kind)
        groups[section].add_argument(*flag_names(option), **settings)


def flag_parser(option: dataclasses.Field, kind: Any) -> Callable[[str], Any]:
    """The flag's text to a value of its key. argparse names the flag and the type when that fails ("argument
    --epochs: invalid int value: 'x'"), or says what a key's own syntax wants (``--seeds``)."""
    def parse(text: str) -> Any:
        try:
            return from_text(option, kind, text)
        except ValueError as error:
            if option.metadata["parse"]:
                raise argparse.ArgumentTypeError(str(error)) from None
            raise
    parse.__name__ = typing.get_args(kind)[0].__name__ if typing.get_origin(kind) is list else kind.__name__
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    for name, help, description, epilog, default in (
            ("run", "train, score and write a leaderboard", RUN_DESCRIPTION, RUN_EPILOG, "quick"),
            ("score", "score the checkpoints of a model you trained, and write a leaderboard", SCORE_DESCRIPTION,
             SCORE_EPILOG, "none: the defaults")):
        run = commands.add_parser(name, help=help, description=description, epilog=epilog,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        source = run.add_argument_group("settings", "the defaults, then a preset or a config file, then the flags below")
        exclusive = source.add_mutually_exclusive_group()
        exclusive.add_argument("--preset", help=f"a shipped preset (default: {default}); see `bench list presets`")
        exclusive.add_argument("--config", type=Path, metavar="FILE.toml",
                               help="a TOML file of settings (keys as in results' config.toml)")
        add_config_flags(run)
        execution = run.add_argument_group("execution", "how the units run (not settings: the results are the same)")
        execution.add_argument("--executor", choices=["local", "ray"], default="local",
                               help="local: units one after another in this process (default); ray: each unit as a "
                                    "Ray task")
        execution.add_argument("--ray-address", metavar="ADDRESS",
                               help="with --executor ray: join this Ray cluster (e.g. ray://head:10001); default: "
                                    "start a local one")
        execution.add_argument("--no-progress", action="store_true", help="no progress bars")

    data = commands.add_parser("data", help="get, check, build and look at datasets",
                               description=DATA_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = data.add_subparsers(dest="action", metavar="ACTION", required=True)
    fetch = actions.add_parser("fetch", help="download MNIST from the public mirrors (or copy it with --from)")
    fetch.add_argument("name", choices=["mnist"])
    fetch.add_argument("--from", dest="source", type=Path, metavar="DIR", help="copy the four files from this folder instead")
    fetch.add_argument("--mirror", action="append", metavar="URL", help="download from this base URL instead; repeatable, tried in order")
    verify = actions.add_parser("verify", help="check every data file bench knows, and say which is wrong and why")
    build = actions.add_parser("build", help="generate the corrupted test splits of a dataset (mnist-c, idx:PATH)")
    build.add_argument("name", help="mnist-c, or idx:PATH")
    show = actions.add_parser("show", help="write a PNG grid of a few digits under every corruption")
    show.add_argument("name", help="digits-c, mnist-c, or idx:PATH")
    show.add_argument("--out", type=Path, help="PNG file to write (default: <name>-corruptions.png)")
    for action in (fetch, verify, build, show):
        action.add_argument("--data-dir", help="folder searched first for data files, and where bench writes them")

    show = commands.add_parser("show", help="print a leaderboard CSV as tables: scorer x task metrics",
                               description=SHOW_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    show.add_argument("csv", type=Path, metavar="FILE.csv", help="a leaderboard written by `bench run`")
    show.add_argument("--task", choices=list(CAPTIONS), help="only this task")
    show.add_argument("--ranks", action="store_true",
                      help="rank the scorers instead, over independent blocks: each OoD split (its severities as one) "
                           "averaged over seeds, or each seed for difficulty and mislabel (Friedman test, Nemenyi "
                           "post-hoc)")
    show.add_argument("--by-family", action="store_true",
                      help="group each table's rows by the scorer's family (training dynamics, gradient, output-based, "
                           "feature-based, pixel-space), best first within each")

    compare = commands.add_parser("compare", help="join two leaderboards and show the deltas; fail on regressions",
                                  description=COMPARE_DESCRIPTION, epilog=COMPARE_EPILOG,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    compare.add_argument("a", type=Path, metavar="A.csv", help="the baseline")
    compare.add_argument("b", type=Path, metavar="B.csv", help="the candidate; delta = B - A")
    compare.add_argument("--fail-if-drops", action="append", default=[], metavar="METRIC=TOL",
                         help="exit 1 if METRIC gets worse by more than TOL on any row over all seeds; repeatable")
    compare.add_argument("--fail-if-worse", action="append", default=[], metavar="METRIC",
                         help="exit 1 if METRIC gets significantly worse on any row over all seeds (tolerance 0); repeatable")
    compare.add_argument("--alpha", type=float, default=0.05, help="significance level of the gates, after the correction (default 0.05)")
    compare.add_argument("--correction", choices=["holm", "bh"], default="holm",
                         help="over the checked rows: holm (family-wise error, default) or bh (false discovery rate)")
    compare.add_argument("--all", action="store_true", help="every joined row, not only the headline metrics")

    merge = commands.add_parser("merge", help="stack leaderboards of different protocols into one CSV",
                                description=MERGE_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    merge.add_argument("csvs", type=Path, nargs="+", metavar="FILE.csv", help="leaderboards written by `bench run`")
    merge.add_argument("--out", type=Path, required=True, metavar="FILE.csv", help="the merged leaderboard to write")

    report = commands.add_parser("report", help="write a self-contained HTML report of a results folder",
                                 description=REPORT_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    report.add_argument("results", type=Path, metavar="RESULTS_DIR", help="a folder written by `bench run --out`")
    report.add_argument("--out", type=Path, metavar="FILE.html", help="where to write it (default: RESULTS_DIR/report.html)")
    report.add_argument("--data-dir", help="folder searched first for the data files (for the image grids)")

    listing = commands.add_parser("list", help="what is available: scorers, datasets, models, presets")
    listing.add_argument("what", choices=["scorers", "datasets", "models", "presets"])
    listing.add_argument("--plugin", action="append", default=[], metavar="FILE.py", help="also list the scorers of a local file")
    return parser


def command_run(args: argparse.Namespace) -> int:
    from bench.config import load_preset, load_toml

    config = load_toml(args.config, RunConfig(name=args.config.stem)) if args.config else load_preset(args.preset or "quick")
    return run_and_print(config.updated(**{option.name: getattr(args, option.name) for _, option, _ in options()}), args)


def command_score(args: argparse.Namespace) -> int:
    from bench.config import load_preset, load_toml

    config = (load_toml(args.config, RunConfig(name=args.config.stem)) if args.config
              else load_preset(args.preset) if args.preset else RunConfig(name="score"))
    config = config.updated(**{option.name: getattr(args, option.name) for _, option, _ in options()})
    if not config.checkpoints:
        raise BenchError("bench score needs --checkpoints: a folder of checkpoint files, a checkpoints.json manifest, "
                         "a glob such as 'run/*.pt' or one file, and --model, the factory of the network they fit")
    if args.seeds is None:  # one unit per source, numbered as they are given
        config = config.updated(seeds=list(range(len(config.checkpoints))))
    return run_and_print(config, args)


def run_and_print(config: RunConfig, args: argparse.Namespace) -> int:
    from bench.runner import run
    from bench.tables import render

    if args.ray_address and args.executor != "ray":
        raise BenchError("--ray-address is for the Ray executor; add --executor ray")
    result = run(config, not args.no_progress, args.executor, args.ray_address)
    board = result.leaderboard
    print()
    print(render(board, caveats(board)))
    accuracy = sum(t.meta["accuracy"]["test"] for t in result.tables) / len(result.tables)
    print(f"\nclean test accuracy {accuracy:.3f} (mean over seeds)")
    print(f"leaderboard: {result.leaderboard_path} ({len(board)} rows)")
    print(f"score tables: {result.leaderboard_path.parent / 'units'}/ ({len(result.unit_paths)} files)")
    return 0


def caveats(board: pd.DataFrame) -> dict[str, str]:
    """What the results on each dataset of ``board`` do not measure, for the datasets that say (their loader's ``caveat``)."""
    from bench.data import dataset_caveat

    return {name: caveat for name in set(board.dataset) if (caveat := dataset_caveat(name))}


def command_show(args: argparse.Namespace) -> int:
    from bench.leaderboard import read_csv
    from bench.tables import render

    board = read_csv(args.csv)
    if args.task:
        if args.task not in set(board.task):
            raise BenchError(f"{args.csv} has no rows of task {args.task}; its tasks are {', '.join(sorted(set(board.task)))}")
        board = board[board.task == args.task]
    if not args.ranks:
        families = None
        if args.by_family:
            from bench.registry import family_of
            from bench.tables import shown_scorers

            shown = board.assign(shown=shown_scorers(board)).drop_duplicates("shown")
            families = {row.shown: family_of(row.scorer) for row in shown.itertuples()}
        print(render(board, caveats(board), families))
        return 0
    from bench.ranking import ranking_caption, ranking_table, rankings
    from bench.tables import text_table

    found = rankings(board)
    if not found:
        raise BenchError(f"{args.csv} has no per-seed rows that two scorers share: nothing to rank")
    for key, ranking in found.items():
        print(ranking_caption(key, ranking) + "\n")
        print(text_table(ranking_table(ranking)) + "\n")
    return 0


def rounded(joined: pd.DataFrame) -> pd.DataFrame:
    """Joined rows as printed: A, B and the delta at four decimals, p at three significant digits (the CSVs keep
    every digit)."""
    shown = joined.rename(columns={"value_a": "A", "value_b": "B", "p_adjusted": "p adjusted",
                                   "seeds_to_detect": "seeds for it"})
    styles = (("A", "{:.4f}"), ("B", "{:.4f}"), ("delta", "{:+.4f}"), ("p", "{:.3g}"), ("p adjusted", "{:.3g}"),
              ("detectable", "{:.4f}"))
    for column, style in styles:
        if column in shown:
            shown[column] = shown[column].map(style.format)
    return shown


GATED_COLUMNS = ["task", "split", "scorer", "metric", "value_a", "value_b", "delta", "test", "p_adjusted", "detectable"]


MISSED_COLUMNS = [*GATED_COLUMNS[:7], "detectable", "seeds_to_detect"]


def gated_rows(rows: pd.DataFrame, columns: list[str] = GATED_COLUMNS) -> pd.DataFrame:
    """Checked rows as printed: their protocol only where the comparison spans several."""
    protocol = [key for key in ("dataset", "model") if rows[key].nunique() > 1]
    return rounded(rows[protocol + columns])
def command_compare(args: argparse.Namespace) -> int:
    from bench.compare import HEADLINE, compare, headline_rows
    from bench.leaderboard import read_csv
    from bench.tables import text_table

    if not 0 < args.alpha <= 1:
        raise BenchError(f"--alpha {args.alpha} is outside (0, 1]; e.g. 0.05, or 1 for the raw tolerance")
    tolerances = {**dict.fromkeys(args.fail_if_worse, 0.0), **parse_tolerances(args.fail_if_drops)}
    unknown = sorted(set(args.fail_if_worse) - set(BETTER))
    if unknown:
        raise BenchError(f"--fail-if-worse {unknown[0]}: no such headline metric; known: {', '.join(BETTER)}")
    result = compare(read_csv(args.a), read_csv(args.b), tolerances, args.alpha, args.correction)
    for side, protocols in (("A", result.only_a), ("B", result.only_b)):
        for protocol in protocols:
            print(f"only in {side} ({args.a if side == 'A' else args.b}), not compared: " + " / ".join(map(str, protocol)))
    shown = result.joined if args.all else headline_rows(result.joined)
    shown = rounded(shown)
    print(f"A = {args.a}\nB = {args.b}\n{len(result.joined)} rows joined on the keys\n")
    unpaired = ["vs_scorer"] if (shown.vs_scorer == "").all() else []
    print(text_table(shown.drop(columns=["full_spec", "vs_full_spec", "label_mode", "seed", *unpaired])))
    if not tolerances:
        return 0
    families = result.checked.family.nunique()
    print(f"\nthe gate: {len(result.checked)} rows over all seeds, one-sided tests of B worse than A, "
          f"{args.correction}-adjusted within each family, alpha {args.alpha:g} shared by {families} "
          f"famil{'y' if families == 1 else 'ies'}; drops it detects with 80% power (median over the rows, and the "
          f"largest), with the two files' noise per seed:\n")
    print(text_table(result.power_table()))
    missed = result.missed
    headline = missed[missed.family == HEADLINE]
    if not missed.empty:
        print(f"\n{len(missed)} rows are worse beyond the tolerance but within the noise, so not failed "
              f"({len(headline)} headline rows, below); the seeds per file that would detect a drop of that size "
              "with 80% power:\n")
    if not headline.empty:
        print(text_table(gated_rows(headline, MISSED_COLUMNS)))
    gate = f"{', '.join(f'{m}={t:g}' for m, t in tolerances.items())}, {args.correction}-adjusted p <= {args.alpha:g}"
    if result.drops.empty:
        print(f"\nno drop beyond the tolerance and the noise: {gate}")
        return 0
    print(f"\n{len(result.drops)} rows got worse beyond the tolerance and the noise ({gate}):\n")
    print(text_table(gated_rows(result.drops)))
    return 1


def command_merge(args: argparse.Namespace) -> int:
    from bench.compare import merge
    from bench.leaderboard import read_csv, write_csv

    merged = merge([(str(path), read_csv(path)) for path in args.csvs])
    write_csv(merged, args.out)
    print(f"wrote {args.out}: {len(merged)} rows from {len(args.csvs)} files")
    return 0


def command_report(args: argparse.Namespace) -> int:
    from bench.report import write_report

    out = write_report(args.results, args.out, args.data_dir)
    print(f"wrote {out}; open it in a browser")
    return 0


def command_data(args: argparse.Namespace) -> int:
    from bench.data import data_roots, load_dataset, mnist
    from bench.tables import text_table

    roots = data_roots(args.data_dir)
    if args.action == "fetch":
        folder = mnist.fetch(roots[0], source=args.source, mirrors=args.mirror)
        print(f"MNIST is in {folder}, every file matching its published MD5")
    elif args.action == "verify":
        checks = mnist.verify(roots)
        if not checks:
            print(f"no data files in {', '.join(map(str, roots))}; `bench data fetch mnist` gets MNIST")
            return 0
        print(text_table(pd.DataFrame([{"file": str(c.path), "status": "ok" if not c.problem else "WRONG",
                                        "problem": c.problem or "-"} for c in checks])))
        return 1 if any(c.problem for c in checks) else 0
    elif args.action == "build":
        dataset = load_dataset(args.name, args.data_dir)
        print(f"{dataset.name}: {len(dataset.ood)} corrupted test splits of {len(dataset.test)} images; {dataset.source}")
    else:
        from bench.data.corrupted import save_grid

        dataset = load_dataset(args.name, args.data_dir)
        out = args.out or Path(f"{dataset.name}-corruptions.png")
        save_grid(dataset, out)
        print(f"wrote {out}")
    return 0


def command_list(args: argparse.Namespace) -> int:
    if args.what == "scorers":
        from bench import registry
        from bench.specs import spec_value
        from bench.tables import text_table

        for plugin in args.plugin:
            registry.load_plugin_file(plugin)
        rows = []
        for name, cls in registry.available().items():
            scorer = cls()
            params = ", ".join(f"{k}={spec_value(v)}" for k, v in cls.defaults().items()) or "-"
            rows.append({"name": name, "family": scorer.family, "needs": ", ".join(sorted(scorer.needs)),
                         "parameters": params, "reference": cls.reference})
        print(text_table(pd.DataFrame(rows)))
    elif args.what == "datasets":
        from bench.data import available_datasets

        print("\n".join(available_datasets()))
    elif args.what == "models":
        from bench.models import available_models

        print("\n".join([*available_models(), "module:callable"]))
    else:
        from bench.config import available_presets

        print("\n".join(available_presets()))
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GOMP_SPINCOUNT", OPENMP_SPINS)  # before torch loads (``bench.config.OPENMP_SPINS``)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["run", *(argv if argv is not None else sys.argv[1:])])
    try:
        commands = {"run": command_run, "score": command_score, "show": command_show, "compare": command_compare, "merge": command_merge,
                    "report": command_report, "data": command_data, "list": command_list}
        return commands[args.command](args)
    except BenchError as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: every file is written whole or not at all, so there is nothing to mend
        print("bench: interrupted; what finished is kept (units, checkpoints, generated data), and the same "
              "command resumes from there", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the output went to a reader that stopped early (| head): nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
