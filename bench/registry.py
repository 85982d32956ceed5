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
import typing
from pathlib import Path
from typing import Any

from bench.api import SCORER_FORMS, Scorer, register, registered
from bench.entry_points import load_entry_points
from bench.errors import BenchError
from bench.specs import parse_spec, spec_value

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
    """Build a scorer from its spec, checking parameter names and types against the constructor (its annotations,
    else its defaults); the scorer's own ValueError or TypeError (a value out of range) becomes a BenchError."""
    name, params = parse_spec(spec)
    cls = get(name)
    allowed = cls.defaults()
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        listing = ", ".join(f"{k}={v!r}" for k, v in allowed.items()) or "none"
        raise BenchError(f"scorer {name!r} has no parameter {', '.join(unknown)}; its parameters: {listing}")
    for key, value in params.items():  # "none" is None for a parameter that is not a string
        if value == "none" and not isinstance(allowed[key], str):
            params[key] = value = None
        kinds = _parameter_types(cls, key)
        if kinds and not _fits(value, kinds):
            expected = " or ".join(map(_kind_name, kinds))
            raise BenchError(f"scorer spec {spec!r}: {key}={spec_value(value)} is not {expected}; "
                             f"write it as in {name}[{key}={spec_value(allowed[key])}]")
    try:
        return cls(**params)
    except (TypeError, ValueError) as error:
        raise BenchError(f"scorer spec {spec!r}: {error}") from None


def _parameter_types(cls: type[Scorer], key: str) -> tuple[type, ...]:
    """The types a constructor parameter takes: those of its annotation (``int | None``: int and NoneType), else
    that of its default; none known (no annotation and a default of None, or ``Any``): ()."""
    try:
        hint = typing.get_type_hints(cls.__init__).get(key)
    except Exception:  # a plugin's annotation that does not resolve: its default tells
        hint = None
    if hint is None:
        default = cls.defaults()[key]
        return () if default is None else (type(default),)
    return tuple(kind for kind in (typing.get_args(hint) or (hint,)) if isinstance(kind, type))


def _fits(value: Any, kinds: tuple[type, ...]) -> bool:
    """Whether ``value`` is of one of ``kinds``: an int is a float too, a bool is no number."""
    if isinstance(value, bool):
        return bool in kinds
    return isinstance(value, kinds) or (isinstance(value, int) and float in kinds)


def _kind_name(kind: type) -> str:
    """A type as a spec's reader knows it: ``int`` is "an integer", ``NoneType`` is "none"."""
    names = {int: "an integer", float: "a number", bool: "true or false", str: "text", type(None): "none"}
    return names.get(kind, kind.__name__)
