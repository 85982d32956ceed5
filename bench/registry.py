"""Finding scorers, and building them from specs.

Every scorer comes in the same way: through the entry-point group ``bench.scorers`` of an
installed distribution (difficulty-bench declares its own ``scorers/`` modules there), or
from a local file with ``--plugin path/to/file.py``. An entry point names a scorer class, or
a module whose classes use ``@register``. A plugin that fails to load is skipped with a
warning. ``all`` means the built-in scorers, so that installing a plugin does not change what
a plain ``bench run`` computes; a plugin runs when named. The spec grammar is ``bench.specs``.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import importlib.util
import inspect
import sys
import traceback
from pathlib import Path

from bench.api import SCORER_FORMS, Scorer, register, registered
from bench.entry_points import load_entry_points
from bench.errors import BenchError
from bench.specs import parse_spec

ENTRY_POINT_GROUP = "bench.scorers"
DISTRIBUTION = "difficulty-bench"  # whose entry points are the built-in scorers

_discovered = False
_builtin: set[str] = set()


def _discover() -> None:
    """Load every installed entry point of the group, once."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    def use(entry_point: importlib.metadata.EntryPoint, loaded: object) -> None:
        if inspect.isclass(loaded):
            register(loaded)
        if entry_point.dist is not None and entry_point.dist.name == DISTRIBUTION:
            _builtin.update(name for name, cls in registered.items()
                            if cls is loaded or cls.__module__ == getattr(loaded, "__name__", None))

    load_entry_points(ENTRY_POINT_GROUP, "scorer", use)


def load_plugin_file(path: str | Path) -> list[str]:
    """Import a local Python file; returns the names of the scorers it registered."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"plugin file {path} does not exist; pass the path of a .py file that defines a scorer")
    _discover()
    before = set(registered)
    module_name = f"bench_plugin_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # the user's code: any error, reported before anything is computed
        del sys.modules[module_name]
        frames = [frame.lineno for frame in traceback.extract_tb(error.__traceback__) if frame.filename == str(path)]
        line = error.lineno if isinstance(error, SyntaxError) else (frames or ["?"])[-1]
        raise BenchError(f"plugin file {path} could not be imported ({type(error).__name__} at line {line}: {error}); "
                         f"fix it, or run without --plugin {path}") from None
    for _, obj in inspect.getmembers(module, inspect.isclass):
        if obj.__module__ == module_name and issubclass(obj, SCORER_FORMS) and hasattr(obj, "name"):
            try:
                register(obj)
            except (TypeError, ValueError) as error:
                raise BenchError(f"plugin file {path}: {error}") from None
    return sorted(set(registered) - before)


def available() -> dict[str, type[Scorer]]:
    """All registered scorers by name, sorted."""
    _discover()
    return dict(sorted(registered.items()))


def builtin() -> list[str]:
    """The names of difficulty-bench's own scorers, sorted: what ``all`` runs (plugins run when named)."""
    _discover()
    return sorted(_builtin)


def get(name: str) -> type[Scorer]:
    scorers = available()
    if name not in scorers:
        close = difflib.get_close_matches(name, scorers, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise BenchError(
            f"unknown scorer {name!r}; {hint}`bench list scorers` shows the {len(scorers)} available"
        )
    return scorers[name]


def create(spec: str) -> Scorer:
    """Build a scorer from its spec, checking parameter names against the constructor."""
    name, params = parse_spec(spec)
    cls = get(name)
    allowed = cls.defaults()
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        listing = ", ".join(f"{k}={v!r}" for k, v in allowed.items()) or "none"
        raise BenchError(f"scorer {name!r} has no parameter {', '.join(unknown)}; its parameters: {listing}")
    for key, value in params.items():  # "none" is None for a parameter that is not a string
        if value == "none" and not isinstance(allowed[key], str):
            params[key] = None
    try:
        return cls(**params)
    except (TypeError, ValueError) as error:
        raise BenchError(f"scorer spec {spec!r}: {error}") from None
