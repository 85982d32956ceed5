"""Plugins from other installed packages: the entry points of a group, loaded one by one.

A plugin that fails to load must not take the harness down: it is skipped with a warning
that names it and the error.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from collections.abc import Callable
from typing import Any


def load_entry_points(group: str, kind: str, use: Callable[[importlib.metadata.EntryPoint, Any], None]) -> None:
    """``use(entry_point, loaded object)`` for every installed entry point of ``group``; ``kind`` names
    what they are in the warning (``scorer``, ``dataset``)."""
    for entry_point in importlib.metadata.entry_points(group=group):
        try:
            use(entry_point, entry_point.load())
        except Exception as error:  # the plugin's code: any error
            warnings.warn(f"{kind} plugin {entry_point.name!r} ({entry_point.value}) could not be loaded and is "
                          f"skipped: {type(error).__name__}: {error}", stacklevel=3)
