"""Run configuration: one schema of every setting, from which the rest is generated.

The settings are five frozen sections by concern (data, recipe, probing, intervals, run).
Each key is declared once, with its type (choices as ``Literal``), default, help, its checks,
and which hash it enters. Every key's name is unique across the sections, so a key is written
flat everywhere: the flag ``--batch-size`` (``bench.cli`` builds the flags from the schema),
the TOML key ``batch_size``, the keyword ``Benchmark(batch_size=...)``, and the row of
``reference_markdown()``.

A run is built from the defaults, then a preset or a ``--config`` TOML file, then the flags.
Presets are TOML files shipped in ``bench/presets``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import tomllib
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomli_w

from bench.errors import BenchError
from bench.specs import split_specs
from bench.stats import RESAMPLES

PRESETS = Path(__file__).parent / "presets"

# GNU OpenMP threads that wait for work spin this many times before they sleep (its default: 300,000). A
# spinning thread steals the core another process's thread, or one of ours descheduled, needs: beside other
# CPU-bound work a run slows far more than its share (benchmarks/load.py). Read when torch loads OpenMP.
OPENMP_SPINS = "1000"

# The hashes name the settings a unit's scores (the config hash) and its trained models (the training hash)
# depend on. Bump SCHEMA_VERSION when a key's meaning changes, or the same settings give other scores: every
# unit and checkpoint is computed again. Version 1 is the layout of bench 0.6.0, which marked its hashes with
# its own version; marked the same way, the units, checkpoints and leaderboards' config_hash of 0.6.0 keep
# their identity.
SCHEMA_VERSION = 1
VERSION_MARKS = {1: {"bench_version": "0.6.0"}}
# The keys 0.6.0 named in a hash whatever their value. Every other hashed key is named only when it differs
# from its default, so a key added at its default keeps every hash.
NAMED_ALWAYS = ("dataset", "label_noise", "model", "epochs", "batch_size", "lr", "momentum", "weight_decay",
                "checkpoint_every", "label_mode")

Check = Callable[[Any], str | None]  # a value -> what is wrong with it (after "config key 'k' "), or None


def key(default: Any, help: str, *, hashed: Literal["training", "scores"] | None, check: Check | None = None,
        parse: Callable[[str], Any] | None = None, metavar: str | None = None, aliases: tuple[str, ...] = (),
        unordered: bool = False) -> Any:
    """A key of the schema. ``hashed``: which hash it enters (``training``: the trained models and the scores;
    ``scores``: the scores alone; None: neither, as it changes where or how fast, not what). ``parse``: its
    flag's text to a value (lists default to comma-separated); ``aliases``: more flag names; ``unordered``: a
    set, hashed sorted."""
    metadata = {"help": help, "hashed": hashed, "check": check, "parse": parse, "metavar": metavar,
                "aliases": aliases, "unordered": unordered}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def at_least(low: int, zero_means: str = "") -> Check:
    """A check that a number is ``low`` or more; ``zero_means``: what 0 does, where 0 is allowed."""
    def check(value: Any) -> str | None:
        if value >= low:
            return None
        return f"must be 0 ({zero_means}) or more, got {value}" if zero_means else f"must be at least {low}, got {value}"
    return check


def cross_folds(value: int) -> str | None:
    return None if value == 0 or value >= 2 else f"must be 0 (off) or at least 2 folds, got {value}; e.g. 5"


def positive(value: float) -> str | None:
    return None if value > 0 else f"must be positive, got {value}"


def fraction(value: float) -> str | None:
    return None if 0.0 <= value < 1.0 else f"is {value}; it must be in [0, 1), e.g. 0.2 to shuffle 20% of training labels"


def some_scorers(value: list[str]) -> str | None:
    return None if value else 'is empty; name at least one, or "all"'


def distinct_seeds(value: list[int]) -> str | None:
    if not value:
        return "is empty; give at least one seed, e.g. seeds = [0]"
    return None if len(set(value)) == len(value) else f"repeats a seed: {value}"


def distinct_steps(value: list[int]) -> str | None:
    if any(step < 1 for step in value):
        return f"has {min(value)}; give optimizer steps of 1 or more (the untrained model: checkpoint_at_init)"
    return None if len(set(value)) == len(value) else f"repeats a step: {value}"


def known_corruptions(value: list[str]) -> str | None:
    if value == ["all"]:
        return None
    from bench.data import corruption_names

    known = corruption_names()
    unknown = [name for name in value if name not in known]
    if not unknown:
        return None
    return (f"names unknown corruption {', '.join(map(repr, unknown))}; known: {', '.join(known)} (or \"all\" alone, "
            "for every one; none for an empty list)")


def stated_kinds(value: list[str]) -> str | None:
    if not value:
        return None
    from bench.data.dataset import OOD_KINDS

    for entry in value:
        name, sep, kind = entry.rpartition("=")
        if not (sep and name and kind in OOD_KINDS):
            return (f"has {entry!r}; write NAME=KIND, NAME an --ood dataset as its split is named and KIND one of "
                    f"{', '.join(OOD_KINDS)} (e.g. svhn=far)")
    names = [entry.rpartition("=")[0] for entry in value]
    repeated = sorted({name for name in names if names.count(name) > 1})
    return f"states the kind of {repeated[0]} twice; give it once" if repeated else None


def parse_seeds(text: str) -> list[int]:
    """``3`` -> [0, 1, 2]; ``0,4,7`` -> those; ``5-9`` -> 5..9 inclusive. A ValueError names the syntax."""
    try:
        if "," in text:
            seeds = [int(part) for part in text.split(",") if part.strip()]
        elif "-" in text.strip("-"):
            low, high = text.split("-", 1)
            seeds = list(range(int(low), int(high) + 1))
        else:
            seeds = list(range(int(text)))
    except ValueError:
        seeds = []
    if not seeds:
        raise ValueError(f"{text!r} gives no seeds; write a count (3 = seeds 0,1,2), a list (0,4,7) or a range "
                         "(5-9; 7-7 for seed 7 alone)")
    return seeds


class Section:
    """A frozen part of the settings; its values are checked when it is made."""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for option in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, option.name)
            check = option.metadata["check"]
            problem = _type_problem(value, hints[option.name]) or (check(value) if check else None)
            if problem:
                raise BenchError(f"config key {option.name!r} {problem}")


@dataclass(frozen=True)
class Data(Section):
    dataset: str = key("digits-c", "a name (see `bench list datasets`) or PREFIX:PATH: idx: (MNIST-format files), "
                       "npz: (arrays), folder: (train/<class>/ and test/<class>/ images), cifar10:, cifar100:, "
                       "cifar100-coarse:", hashed="training", metavar="NAME")
    data_dir: str = key("", "folder searched first for data files (then $BENCH_DATA, then datasets/), and where bench "
                        "writes them", hashed=None, metavar="DIR")
    label_noise: float = key(0.0, "shuffle this fraction of training labels among themselves (e.g. 0.2); the "
                             "mislabel ground truth", hashed="training", check=fraction, metavar="FRACTION")
    train_size: int = key(0, "keep N training examples, drawn per class in proportion (seed 0), before label noise; "
                          "0: all", hashed="training", check=at_least(0, "every training example"), metavar="N")
    # ood, ood_kind, ood_resize, corrupted_size: hashed through the data's provenance, which names each OoD dataset's
    # source, its kind and how it was resized, and how many images each corrupted split keeps
    ood: list[str] = key([], "add the test split of each dataset as an OoD split named after it, beside the "
                         "corruptions (e.g. textures, or idx:~/fashion-mnist for MNIST); its kind: ood_kind",
                         hashed=None, metavar="DATASET[,DATASET...]")
    ood_kind: list[str] = key([], "the kind of an --ood dataset, NAME=KIND with NAME its split's name and KIND near, "
                              "far, covariate or semantic (e.g. svhn=far), for the OoD task's means per kind "
                              "(mean:near, mean:far); unstated: OpenOOD v1.5's kind of the pair (beside cifar10, "
                              "cifar100 near and mnist far), else semantic", hashed=None, check=stated_kinds,
                              metavar="NAME=KIND[,NAME=KIND...]")
    ood_resize: Literal["none", "openood"] = key(
        "none", "an --ood dataset whose images have another size: none (refused), or openood, OpenOOD v1.5's "
        "evaluation rule Resize(S) + CenterCrop(S) for in-distribution images of S x S pixels (after the channel "
        "conversion, the shorter side scaled to S by Pillow's bilinear filter, then the centre S x S crop: 28x28 "
        "MNIST beside 32x32 CIFAR-10), written in the data's provenance", hashed=None)
    corruptions: list[str] = key(["all"], "only these corruptions of the test split as OoD splits, each generated "
                                 "once when missing (e.g. fog,contrast on CIFAR-10: 2 of its 15), or all; \"\" "
                                 "(corruptions = [] in a config file) for none",
                                 hashed="scores", check=known_corruptions, metavar="NAME[,NAME...]", unordered=True)
    corrupted_size: int = key(0, "keep the corrupted copies of N test images in each corrupted split, the same N in "
                              "every one (drawn per class in proportion, seed 0), scored apart from the clean images "
                              "(stratified intervals); 0: all (CIFAR-10-C's 75 splits hold 750,000 images)",
                              hashed=None, check=at_least(0, "every image"), metavar="N")


@dataclass(frozen=True)
class Recipe(Section):
    model: str = key("lenet", "mlp, lenet, an installed model plugin, or your own as module:callable or "
                     "path/to/file.py:callable, a function of (input_shape, n_classes) returning an nn.Module whose "
                     "last layer is an nn.Linear", hashed="training", metavar="MODEL")
    # Not hashed as paths: the files' content digests enter the training hash (``bench.checkpoints``).
    checkpoints: list[str] = key([], "score these checkpoints of a model you trained instead of training one (bench "
                                 "score): one source per training run, each a folder, a checkpoints.json manifest, a "
                                 "glob or a single file; seeds then name the sources' units, one each; the recipe keys "
                                 "below are not used", hashed=None, metavar="SOURCE[,SOURCE...]")
    epochs: int = key(10, "training epochs", hashed="training", check=at_least(1), metavar="N")
    batch_size: int = key(32, "training batch size (lower it if the GPU runs out of memory)", hashed="training",
                          check=at_least(1), metavar="N")
    lr: float = key(0.03, "peak learning rate", hashed="training", check=positive, metavar="LR")
    momentum: float = key(0.9, "SGD's momentum (AdamW has none)", hashed="training", metavar="M")
    weight_decay: float = key(5e-4, "weight decay of SGD or AdamW", hashed="training", metavar="W")
    optimizer: Literal["sgd", "adamw"] = key("sgd", "SGD with momentum, or AdamW", hashed="training")
    schedule: Literal["constant", "step", "cosine", "onecycle"] = key(
        "constant", "learning rate over the optimizer steps: step divides it by 10 at half and 100 at three "
        "quarters, onecycle warms up over the first 30%", hashed="training")
    augment: Literal["none", "crop-flip"] = key("none", "crop-flip: random crops of the 4-pixel zero-padded image "
                                                "and horizontal flips", hashed="training")
    normalize: bool = key(False, "standardise inputs per channel by the training split's mean and std (a fixed "
                          "first layer)", hashed="training")
    amp: bool = key(False, "mixed-precision training (float16 with loss scaling on CUDA, bfloat16 on the CPU); the "
                    "probe stays float32", hashed="training")
    checkpoint_every: int = key(1, "a checkpoint every N epochs (or steps); the end of training is always one",
                                hashed="training", check=at_least(1), metavar="N")
    checkpoint_unit: Literal["epoch", "step"] = key("epoch", "what checkpoint_every counts: epochs, or optimizer "
                                                    "steps", hashed="training")
    early_checkpoints: list[int] = key([], "also a checkpoint after each of these optimizer steps, whatever "
                                       "checkpoint_unit: with checkpoint_at_init, early_checkpoints = [100, 200] makes "
                                       "VoG's early window (the first 3 checkpoints) the first 200 steps",
                                       hashed="training", check=distinct_steps, metavar="STEP[,STEP...]")
    checkpoint_at_init: bool = key(False, "a checkpoint of the untrained model too (epoch 0), as GraNd at "
                                   "initialisation needs", hashed="training")
    # "scores": the unit's own model is the same with or without folds, so its checkpoints are shared; the fold
    # models are stored beside them, named by the training hash and K (``bench.unit``).
    cross_fit: int = key(0, "K-fold cross-fitting, for scores on out-of-sample predictions as cleanlab defines them: "
                         "K more models per unit, each trained with this recipe on the training split minus one fold "
                         "(folds stratified by class, drawn from the seed), so that every training example has the "
                         "logits of a model that never saw it (the signal heldout_logits); costs K more trainings per "
                         "unit, made only when a scorer needs them; 0: off", hashed="scores", check=cross_folds,
                         metavar="K")


@dataclass(frozen=True)
class Probing(Section):
    scorers: list[str] = key(["all"], 'scorer specs, e.g. "vog[norm=z],kde", grids as "vog[window=early|late]", or '
                             "all (every built-in scorer; plugins run when named)", hashed=None,  # hashed as full specs
                             check=some_scorers, metavar="SPEC[,SPEC...]")
    plugins: list[str] = key([], "local scorer plugin files to load", hashed=None, metavar="FILE.py",
                             aliases=("--plugin",))
    label_mode: Literal["predicted", "true"] = key("predicted", "labels for scoring test and OoD splits: the "
                                                   "model's prediction, or the true label (oracle)", hashed="scores")
    probe_train_size: int = key(0, "score N of the training images, drawn per class in proportion (seed 0; the "
                                "same N in every unit), the model trained on all of them; detectors fit on those N "
                                "(CIFAR- and ImageNet-sized runs, whose probe costs far more than training); 0: all",
                                hashed="scores",
                                check=at_least(0, "every training image"), metavar="N")
    probe_batch_size: int = key(256, "examples per probe pass (lower it if the GPU runs out of memory probing)",
                                hashed="scores", check=at_least(1), metavar="N")
    state_dtype: Literal["float64", "float32"] = key("float64", "running sums and moments of the scores; float32 "
                                                     "halves VoG's per-pixel state", hashed="scores")
    shards: int = key(1, "probe each split in N shards of consecutive whole probe batches, one after another, each "
                      "holding the running states of its own examples alone, then joined: the same scores bit for "
                      "bit; each shard is kept until its unit is saved, so an interrupted run probes again only the "
                      "shards it did not keep", hashed=None, check=at_least(1), metavar="N")
    checkpoint_shards: int = key(1, "cut the checkpoints into M consecutive ranges too, each probed alone (a shard "
                                 "for each range of examples and of checkpoints, so more workers can share a unit "
                                 "with few examples and many checkpoints), then merged by each reduction's merge: "
                                 "sums and moments equal the unsharded to rounding, not bit for bit, so M is part of "
                                 "the scores' hash", hashed="scores", check=at_least(1), metavar="M")


@dataclass(frozen=True)
class Intervals(Section):
    example_intervals: Literal["asymptotic", "bootstrap", "none"] = key(
        "asymptotic", "the 95% intervals over examples, of a one-seed run and of scores the seed does not change: "
        "asymptotic (DeLong for AUROC, the delta method for AUPR, AP and FPR@95, Fisher's z for Spearman; "
        "arithmetic on one sort), bootstrap (bootstrap_resamples resamples; the cost of that many sorts) or none",
        hashed=None)
    bootstrap_resamples: int = key(RESAMPLES, "resamples of the bootstrap over examples, when example_intervals is "
                                   "bootstrap; 0: none", hashed=None, check=at_least(0, "no intervals over examples"),
                                   metavar="N")


@dataclass(frozen=True)
class Run(Section):
    name: str = key("run", "names the results folder, results/<name> (bench run: the preset's or the config file's "
                    "name)", hashed=None, metavar="NAME")
    seeds: list[int] = key([0, 1, 2], "a count (3 = seeds 0,1,2), a list (0,4,7) or a range (5-9); one unit each",
                           hashed=None, check=distinct_seeds, parse=parse_seeds, metavar="SEEDS")
    device: str = key("auto", "auto (CUDA when present), cpu, cuda or cuda:N", hashed=None, metavar="DEVICE")
    threads: int = key(0, "CPU threads for torch and for the BLAS of numpy, scipy and scikit-learn; 0: "
                       "OMP_NUM_THREADS if set, else the cores this process may use (a value here wins over "
                       "OMP_NUM_THREADS, with a note); scores are bit for bit the same only for the same thread count",
                       hashed=None, check=at_least(0, "the cores this process may use"), metavar="N")
    out: str = key("", "results folder; empty: results/<name>", hashed=None, metavar="DIR")


SECTIONS: dict[str, type[Section]] = {"data": Data, "recipe": Recipe, "probing": Probing, "intervals": Intervals,
                                      "run": Run}
SECTION_HELP = {
    "data": "what is scored: the dataset, its training labels, and the OoD splits beside its test split",
    "recipe": "how each seed's model is trained, and when it is checkpointed",
    "probing": "what is scored at every checkpoint, and how",
    "intervals": "the leaderboard's 95% intervals",
    "run": "which units run, on what, and where their files go",
}
SECTION_OF = {option.name: name for name, cls in SECTIONS.items() for option in dataclasses.fields(cls)}


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """The annotated types of a section's keys (evaluated once: settings are made often)."""
    return typing.get_type_hints(cls)


def options() -> list[tuple[str, dataclasses.Field, Any]]:
    """Every key of the schema as (section, field, type), in order."""
    return [(name, option, _hints(cls)[option.name]) for name, cls in SECTIONS.items() for option in dataclasses.fields(cls)]


@dataclass(frozen=True, init=False)
class RunConfig:
    """The settings of a run, one section per concern. Made from flat keys, ``RunConfig(epochs=3, seeds=[0])``, the
    others at their defaults; a key is read flat too (``config.epochs``, the same as ``config.recipe.epochs``)."""

    data: Data
    recipe: Recipe
    probing: Probing
    intervals: Intervals
    run: Run

    def __init__(self, **keys: Any) -> None:
        check_keys(keys, "RunConfig()")
        for name, cls in SECTIONS.items():
            object.__setattr__(self, name, cls(**{k: v for k, v in keys.items() if SECTION_OF[k] == name}))

    def __getattr__(self, name: str) -> Any:  # called only for names that are not attributes: the flat keys
        if name not in SECTION_OF:
            raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r}")
        return getattr(getattr(self, SECTION_OF[name]), name)

    def flat(self) -> dict[str, Any]:
        """Every key -> its value, in the schema's order."""
        return {option.name: getattr(self, option.name) for _, option, _ in options()}

    def updated(self, **changes: Any) -> "RunConfig":
        """A copy with the given keys changed (None values are ignored), checked like a file."""
        changes = {k: v for k, v in changes.items() if v is not None}
        check_keys(changes, "the command line")
        return RunConfig(**{**self.flat(), **changes})

    @property
    def out_dir(self) -> Path:
        return Path(self.out or f"results/{self.name}")

    def named(self, hashed: str) -> dict[str, Any]:
        """The keys that enter the ``hashed`` hash: those of NAMED_ALWAYS, and the others where they differ from
        their defaults."""
        values = {}
        for _, option, _ in options():
            if option.metadata["hashed"] != hashed:
                continue
            value, default = getattr(self, option.name), _default(option)
            if option.name in NAMED_ALWAYS or value != default:
                values[option.name] = sorted(set(value)) if option.metadata["unordered"] else value
        return values

    def training_config(self, data_source: str, checkpoints: tuple[str, ...] = ()) -> dict[str, Any]:
        """What a trained model depends on, apart from the seed: its checkpoints are shared by every scorer.
        ``checkpoints``: the content digests of the sources of ``checkpoints``, a user's trained models."""
        return {**VERSION_MARKS[SCHEMA_VERSION], "data_source": data_source, **self.named("training"),
                **({"checkpoints": list(checkpoints)} if checkpoints else {})}

    def unit_config(self, scorers: dict[str, str], data_source: str, checkpoints: tuple[str, ...] = ()) -> dict[str, Any]:
        """What a unit's scores depend on, apart from the seed: the training, the probing settings, and the scorers
        (spec -> full spec, every parameter named: a changed default is another scorer)."""
        return {**self.training_config(data_source, checkpoints), **self.named("scores"),
                "scorers": dict(sorted(scorers.items()))}

    def config_hash(self, scorers: dict[str, str], data_source: str, checkpoints: tuple[str, ...] = ()) -> str:
        return digest(self.unit_config(scorers, data_source, checkpoints))

    def training_hash(self, data_source: str, checkpoints: tuple[str, ...] = ()) -> str:
        return digest(self.training_config(data_source, checkpoints))

    def to_toml(self) -> str:
        """Every key, flat, under a comment per section; ``load_toml`` reads it back as this config."""
        return "\n".join(f"# {name}: {SECTION_HELP[name]}\n"
                         + tomli_w.dumps(dataclasses.asdict(getattr(self, name))) for name in SECTIONS)


def _default(option: dataclasses.Field) -> Any:
    return option.default_factory() if option.default is dataclasses.MISSING else option.default  # type: ignore[misc]


def _type_problem(value: Any, kind: Any) -> str | None:
    """What is wrong with ``value`` as the annotated type ``kind``, or None."""
    if typing.get_origin(kind) is Literal:
        allowed = typing.get_args(kind)
        return None if value in allowed else f"is {value!r}; allowed: {', '.join(allowed)}"
    if not _is(value, kind):
        return f"must be {_name(kind)}, got {value!r}"
    if kind is float and not math.isfinite(value):  # nan passes every comparison of the checks
        return f"is {value}; it must be a finite number"
    return None


def _is(value: Any, kind: Any) -> bool:
    """Whether ``value`` is of the annotated type ``kind`` (a float may be written as an int; a bool is no number)."""
    if typing.get_origin(kind) is list:
        (item,) = typing.get_args(kind)
        return isinstance(value, list) and all(_is(v, item) for v in value)
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    return isinstance(value, (int, float) if kind is float else kind)


def _name(kind: Any) -> str:
    return getattr(kind, "__name__", str(kind)) if typing.get_origin(kind) is None else str(kind)


def type_text(kind: Any) -> str:
    """A key's type as the reference shows it: ``int``, ``list[str]``, or its choices ``sgd | adamw``."""
    return " \\| ".join(typing.get_args(kind)) if typing.get_origin(kind) is Literal else _name(kind)


def flag_names(option: dataclasses.Field) -> list[str]:
    """The flags of a key: ``--batch-size`` for ``batch_size``, then its aliases."""
    return [f"--{option.name.replace('_', '-')}", *option.metadata["aliases"]]


def from_text(option: dataclasses.Field, kind: Any, text: str) -> Any:
    """A flag's text as a value of the key: its ``parse``, else a list split at commas (not inside brackets), else
    the type itself (``int("3")``). Raises ValueError."""
    if option.metadata["parse"]:
        return option.metadata["parse"](text)
    if typing.get_origin(kind) is list:
        (item,) = typing.get_args(kind)
        return [item(part) for part in split_specs(text)]
    return kind(text)


def reference_markdown() -> str:
    """Every key as a markdown table: section, key, type or choices, default, flag, help."""
    rows = ["| section | key | type | default | flag | help |", "|---|---|---|---|---|---|"]
    for section, option, kind in options():
        flags = flag_names(option)
        flag = f"`{flags[0]}` / `--no-{flags[0][2:]}`" if kind is bool else " ".join(f"`{name}`" for name in flags)
        default = json.dumps(_default(option))
        help = option.metadata["help"].replace("|", "\\|").replace("<", "&lt;")  # a table cell: no pipes, no tags
        rows.append(f"| {section} | `{option.name}` | {type_text(kind)} | `{default}` | {flag} | {help} |")
    return "\n".join(rows) + "\n"


def digest(values: dict[str, Any]) -> str:
    """A short, stable hash of a JSON-able mapping."""
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:12]


def check_keys(values: dict[str, Any], source: str) -> None:
    unknown = sorted(set(values) - set(SECTION_OF))
    if unknown:
        raise BenchError(f"{source}: unknown config key {', '.join(map(repr, unknown))}; allowed keys: "
                         f"{', '.join(SECTION_OF)}")


def load_toml(path: Path, base: RunConfig | None = None) -> RunConfig:
    """``base`` (or the defaults) updated with the keys of a TOML file, written flat (as ``to_toml`` writes them)."""
    try:
        values = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BenchError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise BenchError(f"config file {path} is not valid TOML: {error}") from None
    check_keys(values, f"config file {path}")
    try:
        return (base or RunConfig()).updated(**values)
    except BenchError as error:
        raise BenchError(f"config file {path}: {error}") from None


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESETS.glob("*.toml"))


def load_preset(name: str) -> RunConfig:
    path = PRESETS / f"{name}.toml"
    if not path.is_file():
        raise BenchError(f"unknown preset {name!r}; available: {', '.join(available_presets())}")
    return load_toml(path, RunConfig(name=name))
