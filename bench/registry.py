"""Finding scorers, and building them from specs.

Every scorer comes in the same way (``bench.plugins``): through the entry-point group
``bench.scorers`` of an installed distribution (difficulty-bench declares its own ``scorers/``
modules there), or from a local file with ``--plugin path/to/file.py``. An entry point names a
scorer class, or a module whose scorer classes are all taken. A plugin that fails to load is
skipped with a warning. ``all`` means the built-in scorers, so that installing a plugin does not
change what a plain ``bench run`` computes; a plugin runs when named. The spec grammar is
``bench.specs``.
"""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Any

from bench.api import SCORER_FORMS, Scorer, register, registered
from bench.errors import BenchError
from bench.plugins import Registry
from bench.specs import parse_spec, spec_value

ENTRY_POINT_GROUP = "bench.scorers"


def scorer_classes(name: str, loaded: object) -> dict[str, type[Scorer]]:
    """The scorers an entry point or a plugin file brings, registered: a class, or the scorer classes a module
    defines."""
    if inspect.isclass(loaded):
        return {register(loaded).name: loaded}
    defined = [cls for _, cls in inspect.getmembers(loaded, inspect.isclass)
               if cls.__module__ == loaded.__name__ and issubclass(cls, SCORER_FORMS) and hasattr(cls, "name")]
    return {register(cls).name: cls for cls in defined}


SCORERS = Registry("scorer", ENTRY_POINT_GROUP, adopt=scorer_classes, entries=registered,
                   known=lambda names: f"`bench list scorers` shows the {len(names)} available")


def load_plugin_file(path: str | Path) -> list[str]:
    """Import a local Python file; returns the names of the scorers it registered."""
    return SCORERS.load_file(path)


def available() -> dict[str, type[Scorer]]:
    """All registered scorers by name, sorted."""
    return dict(sorted(SCORERS.entries().items()))


def builtin() -> list[str]:
    """The names of difficulty-bench's own scorers, sorted: what ``all`` runs (plugins run when named)."""
    return sorted(SCORERS.builtin())


def get(name: str) -> type[Scorer]:
    return SCORERS.get(name)


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


def family_of(spec: str) -> str:
    """The family of the scorer ``spec`` builds (a detector's follows its feature space); ``other`` when no
    installed scorer builds from it (a plugin absent here)."""
    try:
        return create(spec).family
    except BenchError:
        return "other"


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
