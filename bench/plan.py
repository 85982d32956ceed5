"""The plan of a run: its settings resolved once into scorer specs, hashes and file names.

A run is ``units = dataset x model x seed``; every unit of a plan shares its scorers (each
named by its spec in results and identified by its full spec, every parameter written out),
its config hash (what the scores depend on) and its training hash (what the trained models
depend on).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from bench import registry
from bench.api import PIXELS, Detector
from bench.checkpoints import CheckpointSource
from bench.config import RunConfig
from bench.data import Dataset
from bench.specs import expand_grid
from bench.store import Store


def scorer_specs(config: RunConfig) -> list[str]:
    """The canonical specs of the configured scorers, grids expanded; builds each once, so bad names fail before any training."""
    for plugin in config.plugins:
        registry.load_plugin_file(plugin)
    names = []
    for spec in config.scorers:
        names += registry.builtin() if spec == "all" else expand_grid(spec)
    return list(dict.fromkeys(registry.create(spec).spec for spec in names))


@dataclass
class Plan:
    """Everything the units of a run share; the hashes are computed once (the plan is not changed after it is made)."""

    config: RunConfig
    dataset: str  # the dataset's name
    data_source: str  # the provenance of its data (files and their MD5s, or the generator)
    training_source: str  # the provenance of what the model trains on (``Dataset.trained_on``: no added OoD splits)
    full_specs: dict[str, str]  # spec -> full spec, in the order the scorers run
    model_free: frozenset[str] = field(default_factory=frozenset)  # specs that do not depend on the trained model
    sources: tuple[CheckpointSource, ...] = ()  # a user's checkpoints (``config.checkpoints``), one per seed, in order

    @property
    def checkpoint_digests(self) -> tuple[str, ...]:
        return tuple(source.digest for source in self.sources)

    @property
    def specs(self) -> list[str]:
        return list(self.full_specs)

    @property
    def store(self) -> Store:
        return Store(self.config.out_dir)

    @functools.cached_property
    def unit_config(self) -> dict:
        return self.config.unit_config(self.full_specs, self.data_source, self.checkpoint_digests)

    @functools.cached_property
    def config_hash(self) -> str:
        return self.config.config_hash(self.full_specs, self.data_source, self.checkpoint_digests)

    @functools.cached_property
    def training_hash(self) -> str:
        return self.config.training_hash(self.training_source, self.checkpoint_digests)

    def source(self, seed: int) -> CheckpointSource | None:
        """The user's checkpoints of the unit of ``seed``, or None where the harness trains the model."""
        return self.sources[self.config.seeds.index(seed)] if self.sources else None

    def unit_path(self, seed: int) -> Path:
        return self.store.unit_path(self.dataset, self.config.model, seed, self.config_hash)

    def checkpoints_path(self, seed: int) -> Path:
        return self.store.checkpoints_path(self.dataset, self.config.model, seed, self.training_hash)


def make_plan(config: RunConfig, dataset: Dataset, specs: list[str], sources: tuple[CheckpointSource, ...] = ()) -> Plan:
    """The plan of ``config`` on ``dataset``, for the scorer ``specs`` (from ``scorer_specs``); ``sources``: the
    user's checkpoints ``config.checkpoints`` names (``bench.checkpoints.find_checkpoints``)."""
    scorers = {spec: registry.create(spec) for spec in specs}
    model_free = frozenset(spec for spec, scorer in scorers.items()
                           if isinstance(scorer, Detector) and scorer.features == PIXELS)
    return Plan(config, dataset.name, dataset.source, dataset.trained_on,
                {spec: s.full_spec for spec, s in scorers.items()}, model_free, sources)
