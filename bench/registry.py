"""The scorer registry and the three ways in: built-in modules, entry points, plugin files.

* Built-in scorers live in the ``scorers`` package, one module per family.
* Any installed distribution can add scorers through the entry-point group ``bench.scorers``;
  an entry point may name a Scorer class or a module whose classes use ``@register``.
* ``--plugin path/to/file.py`` imports a local file the same way.

A scorer is asked for by a spec string, ``name`` or ``name[param=value,...]``.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import inspect
import itertools
import pkgutil
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

from bench.api import RESERVED_COLUMNS, SIGNALS, Detector, DynamicsScorer, Scorer
from bench.errors import BenchError

ENTRY_POINT_GROUP = "bench.scorers"

_registry: dict[str, type[Scorer]] = {}
_origins: dict[str, str] = {}
_discovered = False


def register(cls: type[Scorer]) -> type[Scorer]:
    """Class decorator that makes a scorer available under ``cls.name``."""
    if not (inspect.isclass(cls) and issubclass(cls, (DynamicsScorer, Detector))):
        raise TypeError(f"{cls!r} is not a DynamicsScorer or Detector subclass")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__qualname__} has no `name`; set a short kebab-case name")
    if name in RESERVED_COLUMNS:
        raise ValueError(f"scorer name {name!r} is reserved for a score-table column; pick another")
    for attribute in ("family", "reference"):
        if not isinstance(getattr(cls, attribute, None), str):
            raise TypeError(f"scorer {name!r} must set the class attribute `{attribute}`")
    origin = f"{cls.__module__}.{cls.__qualname__}"
    if name in _registry and _origins[name] != origin:
        raise ValueError(f"scorer name {name!r} is taken by {_origins[name]}; {origin} must pick another")
    unknown = set(_needs_of(cls)) - set(SIGNALS)
    if unknown:
        raise ValueError(f"scorer {name!r} needs unknown signals {sorted(unknown)}; known: {', '.join(SIGNALS)}")
    _registry[name] = cls
    _origins[name] = origin
    return cls


def _needs_of(cls: type[Scorer]) -> frozenset[str]:
    needs = cls.needs
    return needs if isinstance(needs, frozenset) else cls().needs


def _discover() -> None:
    """Import the built-in scorer modules and the installed entry points, once."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    import scorers

    for module in pkgutil.iter_modules(scorers.__path__):
        importlib.import_module(f"scorers.{module.name}")
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry_point.load()
            if inspect.isclass(loaded):
                register(loaded)
        except Exception as error:  # a broken plugin must not take the harness down
            warnings.warn(
                f"scorer plugin {entry_point.name!r} ({entry_point.value}) could not be loaded "
                f"and is skipped: {type(error).__name__}: {error}",
                stacklevel=2,
            )


def load_plugin_file(path: str | Path) -> list[str]:
    """Import a local Python file; returns the names of the scorers it registered."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"plugin file {path} does not exist; pass the path of a .py file that defines a scorer")
    _discover()
    before = set(_registry)
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
        if obj.__module__ == module_name and issubclass(obj, (DynamicsScorer, Detector)) and hasattr(obj, "name"):
            register(obj)
    return sorted(set(_registry) - before)


def available() -> dict[str, type[Scorer]]:
    """All registered scorers by name, sorted."""
    _discover()
    return dict(sorted(_registry.items()))


def get(name: str) -> type[Scorer]:
    scorers = available()
    if name not in scorers:
        close = difflib.get_close_matches(name, scorers, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise BenchError(
            f"unknown scorer {name!r}; {hint}`bench list scorers` shows the {len(scorers)} available"
        )
    return scorers[name]


def _items(spec: str) -> tuple[str, list[tuple[str, str]]]:
    """Split ``name[a=1,b=x]`` into the name and its (key, value text) pairs."""
    spec = spec.strip()
    if "[" not in spec:
        return spec, []
    if not spec.endswith("]"):
        raise BenchError(f"scorer spec {spec!r} must end with ']', as in vog[norm=z]")
    name, body = spec[:-1].split("[", 1)
    items = []
    for item in filter(None, (part.strip() for part in body.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise BenchError(f"scorer spec {spec!r}: {item!r} is not key=value")
        items.append((key.strip(), value.strip()))
    return name.strip(), items


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``name[a=1,b=x]`` into the name and its parameters (TOML-like literals)."""
    name, items = _items(spec)
    return name, {key: _literal(value) for key, value in items}


def _literal(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text.strip("'\"")


def expand_grid(spec: str) -> list[str]:
    """Every combination of the parameter values a spec lists with ``|``, in the order written.

    ``vog[window=early|late,norm=none|z]`` -> ``vog[window=early,norm=none]``,
    ``vog[window=early,norm=z]``, ``vog[window=late,norm=none]``, ``vog[window=late,norm=z]``.
    """
    spec = spec.strip()
    if "|" not in spec:
        return [spec]
    name, items = _items(spec)
    if "|" in name:
        raise BenchError(f"scorer spec {spec!r}: '|' separates the values of one parameter inside the brackets, "
                         "as in vog[window=early|late]; list different scorers with commas")
    choices = [[f"{key}={value.strip()}" for value in values.split("|")] for key, values in items]
    return [f"{name}[{','.join(combination)}]" for combination in itertools.product(*choices)]


def split_specs(text: str) -> list[str]:
    """Split a comma-separated list of specs, keeping commas inside brackets."""
    specs, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            specs.append(current)
            current = ""
        else:
            current += char
    specs.append(current)
    return [s.strip() for s in specs if s.strip()]


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
