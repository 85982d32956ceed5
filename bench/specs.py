"""The spec grammar: a scorer asked for by name, ``name`` or ``name[param=value,...]``.

Pure string functions, so that everything that reads results (tasks, leaderboards) can
parse a stored spec without the registry. Values are TOML-like literals: ``true``/``false``,
numbers, ``none``, or text.
"""

from __future__ import annotations

import itertools
from typing import Any

from bench.errors import BenchError


def spec_value(value: Any) -> str:
    """A parameter value as a spec writes it, so that the spec parses back to the same value."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def format_spec(name: str, params: dict[str, Any]) -> str:
    """``vog`` and {"norm": "z"} -> ``vog[norm=z]``; no brackets without parameters."""
    return f"{name}[{','.join(f'{k}={spec_value(v)}' for k, v in params.items())}]" if params else name


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
