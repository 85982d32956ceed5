"""Run configuration: defaults, TOML files and presets, validated with messages that name the fix.

A run is built from the defaults below, then a preset or a ``--config`` TOML file, then the
command-line flags. Presets are TOML files shipped in ``bench/presets``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

import bench
from bench.errors import BenchError

PRESETS = Path(__file__).parent / "presets"
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("constant", "step", "cosine", "onecycle")
AUGMENTATIONS = ("none", "crop-flip")
CHECKPOINT_UNITS = ("epoch", "step")
RECIPE = {"checkpoint_at_init": False, "checkpoint_unit": "epoch", "optimizer": "sgd", "schedule": "constant",
          "augment": "none", "amp": False, "normalize": False}  # the defaults
PROBING = {"probe_batch_size": 256, "state_dtype": "float64"}  # the defaults
STATE_DTYPES = ("float64", "float32")
LABEL_MODES = ("predicted", "true")

# GNU OpenMP threads that wait for work spin this many times before they sleep (its default: 300,000). A
# spinning thread steals the core another process's thread, or one of ours descheduled, needs: beside other
# CPU-bound work a run slows far more than its share (benchmarks/load.py). Read when torch loads OpenMP.
OPENMP_SPINS = "1000"


@dataclass
class RunConfig:
    name: str = "run"  # names the results folder, results/<name>
    dataset: str = "digits-c"  # a name from `bench list datasets`, or PREFIX:PATH (idx:, npz:, folder:, cifar10: ...)
    data_dir: str = ""  # searched first for data files, and where bench writes them
    label_noise: float = 0.0  # fraction of training labels shuffled among themselves
    train_size: int = 0  # training examples kept, drawn per class in proportion (seed 0) before label noise; 0: all
    ood: list[str] = field(default_factory=list)  # datasets whose test splits are added as semantic OoD splits
    corruptions: list[str] = field(default_factory=lambda: ["all"])  # corruptions whose OoD splits are read (the missing generated), or "all"
    model: str = "lenet"
    scorers: list[str] = field(default_factory=lambda: ["all"])  # specs, or "all" for every built-in scorer
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    epochs: int = 10
    batch_size: int = 32
    lr: float = 0.03
    momentum: float = 0.9
    weight_decay: float = 5e-4
    checkpoint_every: int = 1  # epochs (or steps) between checkpoints; the end of training is always one
    checkpoint_unit: str = "epoch"  # what checkpoint_every counts: epoch, or step (optimizer steps)
    checkpoint_at_init: bool = False  # a checkpoint before training too (epoch 0), as GraNd at initialisation needs
    optimizer: str = "sgd"  # sgd (with momentum) or adamw
    schedule: str = "constant"  # learning rate over the steps: constant, step, cosine or onecycle
    augment: str = "none"  # none, or crop-flip (random crops of the zero-padded image, horizontal flips)
    normalize: bool = False  # standardise inputs per channel by the training split's mean and std (a fixed first layer)
    amp: bool = False  # mixed-precision training: float16 with loss scaling on CUDA, bfloat16 on the CPU; the probe stays float32
    label_mode: str = "predicted"  # label of non-training splits: the model's prediction, or the true one (oracle)
    probe_batch_size: int = 256  # examples per probe pass; lower it when the GPU runs out of memory probing
    bootstrap_resamples: int = 1000  # for the 95% intervals of a one-seed run (a bootstrap over examples); 0: none
    state_dtype: str = "float64"  # running sums and moments of the scores; float32 halves VoG's per-pixel state
    device: str = "auto"
    threads: int = 0  # CPU threads for torch and BLAS; wins over OMP_NUM_THREADS; 0: OMP_NUM_THREADS, else the usable cores
    out: str = ""  # results folder; empty means results/<name>
    plugins: list[str] = field(default_factory=list)  # local scorer plugin files

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for key, kind in typing.get_type_hints(RunConfig).items():
            if not _is(getattr(self, key), kind):
                raise BenchError(f"config key {key!r} must be {_name(kind)}, got {getattr(self, key)!r}")
            if kind is float and not math.isfinite(getattr(self, key)):  # nan passes every comparison below
                raise BenchError(f"config key {key!r} is {getattr(self, key)}; it must be a finite number")
        if not self.seeds:
            raise BenchError("config key 'seeds' is empty; give at least one seed, e.g. seeds = [0]")
        if len(set(self.seeds)) != len(self.seeds):
            raise BenchError(f"config key 'seeds' repeats a seed: {self.seeds}")
        if not self.scorers:
            raise BenchError("config key 'scorers' is empty; name at least one, or \"all\"")
        for key in ("epochs", "batch_size", "checkpoint_every", "probe_batch_size"):
            if getattr(self, key) < 1:
                raise BenchError(f"config key {key!r} must be at least 1, got {getattr(self, key)}")
        if self.train_size < 0:
            raise BenchError(f"config key 'train_size' must be 0 (every training example) or more, got {self.train_size}")
        if self.threads < 0:
            raise BenchError(f"config key 'threads' must be 0 (the cores this process may use) or more, got {self.threads}")
        if self.bootstrap_resamples < 0:
            raise BenchError(f"config key 'bootstrap_resamples' must be 0 (no intervals for one seed) or more, "
                             f"got {self.bootstrap_resamples}")
        if self.lr <= 0:
            raise BenchError(f"config key 'lr' must be positive, got {self.lr}")
        if not 0.0 <= self.label_noise < 1.0:
            raise BenchError(f"config key 'label_noise' is {self.label_noise}; it must be in [0, 1), e.g. 0.2 to shuffle 20% of training labels")
        for key, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("augment", AUGMENTATIONS),
                             ("checkpoint_unit", CHECKPOINT_UNITS), ("state_dtype", STATE_DTYPES)):
            if getattr(self, key) not in allowed:
                raise BenchError(f"config key {key!r} is {getattr(self, key)!r}; allowed: {', '.join(allowed)}")
        if self.label_mode not in LABEL_MODES:
            raise BenchError(f"config key 'label_mode' is {self.label_mode!r}; allowed: {', '.join(LABEL_MODES)}")
        if self.corruptions != ["all"]:
            from bench.data import corruption_names

            known = corruption_names()
            unknown = [name for name in self.corruptions if name not in known]
            if unknown or not self.corruptions:
                problem = f"names unknown corruption {', '.join(map(repr, unknown))}" if unknown else "is empty"
                raise BenchError(f"config key 'corruptions' {problem}; known: {', '.join(known)} (or \"all\" alone, for every one)")

    def updated(self, **changes: Any) -> "RunConfig":
        """A copy with the given keys changed (None values are ignored), checked like a file."""
        changes = {k: v for k, v in changes.items() if v is not None}
        check_keys(changes, "the command line")
        return dataclasses.replace(self, **changes)

    @property
    def out_dir(self) -> Path:
        return Path(self.out or f"results/{self.name}")

    def training_config(self, data_source: str) -> dict[str, Any]:
        """What a trained model depends on, apart from the seed: its checkpoints are shared by every scorer."""
        return {
            "bench_version": bench.__version__,
            "dataset": self.dataset,
            "data_source": data_source,
            "label_noise": self.label_noise,
            **({"train_size": self.train_size} if self.train_size else {}),  # named only when set
            "model": self.model,
            **{k: getattr(self, k) for k in ("epochs", "batch_size", "lr", "momentum", "weight_decay", "checkpoint_every")},
            **{k: getattr(self, k) for k in RECIPE if getattr(self, k) != RECIPE[k]},  # named only when changed
        }

    def unit_config(self, scorers: dict[str, str], data_source: str) -> dict[str, Any]:
        """What a unit's scores depend on, apart from the seed: the training, the label mode, the probe's
        settings where changed, and the scorers (spec -> full spec, every parameter named: a changed
        default is another scorer)."""
        probing = {k: getattr(self, k) for k in PROBING if getattr(self, k) != PROBING[k]}
        chosen = {"corruptions": sorted(set(self.corruptions))} if self.corruptions != ["all"] else {}  # named only when not all
        return {**self.training_config(data_source), "label_mode": self.label_mode, **probing, **chosen,
                "scorers": dict(sorted(scorers.items()))}

    def config_hash(self, scorers: dict[str, str], data_source: str) -> str:
        return digest(self.unit_config(scorers, data_source))

    def training_hash(self, data_source: str) -> str:
        return digest(self.training_config(data_source))

    def to_toml(self) -> str:
        return tomli_w.dumps(dataclasses.asdict(self))


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


def digest(values: dict[str, Any]) -> str:
    """A short, stable hash of a JSON-able mapping."""
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:12]


def check_keys(values: dict[str, Any], source: str) -> None:
    allowed = [f.name for f in dataclasses.fields(RunConfig)]
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise BenchError(f"{source}: unknown config key {', '.join(map(repr, unknown))}; allowed keys: {', '.join(allowed)}")


def load_toml(path: Path, base: RunConfig | None = None) -> RunConfig:
    """``base`` (or the defaults) updated with the keys of a TOML file."""
    try:
        values = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BenchError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise BenchError(f"config file {path} is not valid TOML: {error}") from None
    check_keys(values, f"config file {path}")
    try:
        return dataclasses.replace(base or RunConfig(), **values)
    except BenchError as error:
        raise BenchError(f"config file {path}: {error}") from None


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESETS.glob("*.toml"))


def load_preset(name: str) -> RunConfig:
    path = PRESETS / f"{name}.toml"
    if not path.is_file():
        raise BenchError(f"unknown preset {name!r}; available: {', '.join(available_presets())}")
    return load_toml(path, RunConfig(name=name))
