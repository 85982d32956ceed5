"""The Python API: a benchmark from a dataset, a model and scorer specs, run from a notebook or a script.

    from bench.benchmark import Benchmark
    result = Benchmark("digits-c", model="lenet", scorers=["vog", "loss"], seeds=[0, 1], epochs=3).run()
    result.leaderboard          # the leaderboard as a pandas DataFrame
    result.scores("test")       # one row per example and seed, one column per scorer

A dataset is a name or ``PREFIX:PATH`` (as ``--dataset``), a ``bench.data.Dataset``, arrays
``(x_train, y_train, x_test, y_test)`` or two ``torch.utils.data.Dataset`` objects ``(train, test)``.
A model is a name (as ``--model``), a factory ``(input_shape, n_classes) -> nn.Module``, or an
``nn.Module`` class built so or without arguments; with ``checkpoints`` (``bench score``), the
network that a user's saved weights fit, scored instead of trained. Every other setting is a keyword, a key
of the schema in ``bench.config`` (the signature lists them). ``run`` writes the files ``bench run`` writes and reuses what an
earlier run left in the same results folder; ``bench run`` is this class with its settings
read from a preset, a TOML file and flags.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from bench.config import RunConfig, check_keys, options
from bench.data import Dataset
from bench.data.arrays import from_arrays, from_torch
from bench.errors import BenchError
from bench.models import model_name
from bench.runner import RunResult, run


class Benchmark:
    """One benchmark: a dataset x a model x seeds, every scorer, every task."""

    def __init__(self, dataset: Any = "digits-c", model: Any = "lenet", scorers: Sequence[str] = ("all",),
                 ood: Sequence[Any] = (), **settings: Any) -> None:
        """``ood``: datasets (names or ``Dataset`` objects) whose test splits are added as OoD splits (their kinds:
        ``ood_kind``); ``settings``: the other keys of the schema (``seeds``, ``epochs``, ``out``, ``device``, ...)."""
        check_keys(settings, "Benchmark()")
        if settings.get("checkpoints"):  # a user's trained models (paths or text): one unit each, unless seeds say
            settings["checkpoints"] = [str(source) for source in settings["checkpoints"]]
            settings.setdefault("seeds", list(range(len(settings["checkpoints"]))))
        self.dataset = as_dataset(dataset)
        self.ood = [as_dataset(other) for other in ood]
        self.model_is_object = not isinstance(model, str)
        self.config = RunConfig(**{
            "name": "notebook", **settings, "scorers": list(scorers),
            "dataset": self.dataset if isinstance(self.dataset, str) else self.dataset.name,
            "model": model_name(model) if self.model_is_object else model,
            "ood": [other for other in self.ood if isinstance(other, str)],
        })

    def run(self, progress: bool = True, executor: str = "local", ray_address: str | None = None) -> RunResult:
        """Train, score and evaluate (reusing finished units); the result, also written to ``config.out_dir``."""
        if executor == "ray" and self.model_is_object:
            raise BenchError("a model given as a Python object cannot reach Ray workers; give it as module:callable "
                             "(an importable module) or path/to/file.py:callable")
        return run(self.config, progress, executor, ray_address,
                   dataset=None if isinstance(self.dataset, str) else self.dataset,
                   ood=[other for other in self.ood if not isinstance(other, str)])


def _signature() -> inspect.Signature:
    """``__init__``'s signature with every other key of the schema as a keyword (for ``help`` and editors)."""
    own = list(inspect.signature(Benchmark.__init__).parameters.values())[:-1]  # without **settings
    defaults = {**RunConfig().flat(), "name": "notebook"}
    keywords = [inspect.Parameter(option.name, inspect.Parameter.KEYWORD_ONLY, default=defaults[option.name],
                                  annotation=kind)
                for _, option, kind in options() if option.name not in {p.name for p in own}]
    return inspect.Signature([*own, *keywords])


Benchmark.__init__.__signature__ = _signature()  # type: ignore[attr-defined]


def as_dataset(dataset: Any) -> Dataset | str:
    """A name stays a name (loaded by the run); a ``Dataset`` as it is; arrays or torch datasets become one."""
    if isinstance(dataset, (str, Dataset)):
        return dataset
    if isinstance(dataset, tuple) and len(dataset) == 4:
        return from_arrays("arrays", *dataset)
    if isinstance(dataset, tuple) and len(dataset) == 2:
        return from_torch("torch", *dataset)
    raise BenchError(f"a dataset is a name, a bench.data.Dataset, (x_train, y_train, x_test, y_test) arrays or "
                     f"(train, test) torch datasets; got {type(dataset).__name__}")
