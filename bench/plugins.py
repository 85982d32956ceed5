"""One registry mechanism for the three kinds of plugin: scorers, datasets and models.

A ``Registry`` maps names to objects. Everything in it, difficulty-bench's own built-ins
included, comes through the entry points of one group of the installed distributions, or
from a local file: ``import_file`` for a ``--plugin`` file, ``module:callable`` and
``path/to/file.py:callable`` for a reference to one object. A plugin that fails to load is
skipped with a warning that names it; an unknown name is refused with the closest ones.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import sys
import traceback
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, Generic, TypeVar

from bench.errors import BenchError

DISTRIBUTION = "difficulty-bench"  # whose entry points are the built-ins
T = TypeVar("T")


class Registry(Generic[T]):
    """The ``kind`` of plugin (``scorer``, ``dataset``, ``model``) declared under the entry-point group ``group``.

    ``known(names)`` says, in the refusal of an unknown name, which names there are. ``adopt(name, loaded)`` turns
    what an entry point (or a plugin file) loaded into the entries it adds, by name (by default the entry point's
    name and the object itself); it may raise to refuse a plugin. ``entries`` is the mapping that holds them, where
    another part of the harness fills it too (``bench.api.register``). ``wanted`` says what a ``module:callable``
    names, for the kinds that take one.
    """

    def __init__(self, kind: str, group: str, *, known: Callable[[list[str]], str],
                 adopt: Callable[[str, Any], Mapping[str, T]] | None = None, entries: dict[str, T] | None = None,
                 wanted: str = "") -> None:
        self.kind, self.group, self.wanted = kind, group, wanted
        self._adopt = adopt or (lambda name, loaded: {name: loaded})
        self._entries: dict[str, T] = {} if entries is None else entries
        self._known = known
        self._builtin: list[str] = []
        self._discovered = False

    def entries(self) -> dict[str, T]:
        """Every entry by name, in the order found."""
        self._discover()
        return dict(self._entries)

    def builtin(self) -> list[str]:
        """The names that difficulty-bench's own entry points declare."""
        self._discover()
        return list(self._builtin)

    def get(self, name: str) -> T:
        """The entry ``name``; ``module:callable`` or ``path/to/file.py:callable`` where this kind takes one
        (``wanted`` is set); else a refusal with the closest names."""
        self._discover()
        if name in self._entries:
            return self._entries[name]
        if self.wanted and ":" in name:
            return self.reference(name)
        raise self.unknown(name)

    def unknown(self, name: str, like: str | None = None) -> BenchError:
        """The refusal of an unknown ``name``, with the names closest to it (or to ``like``, the part of it meant
        as a name)."""
        names = list(self.entries())
        close = difflib.get_close_matches(like or name, names, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        return BenchError(f"unknown {self.kind} {name!r}; {hint}{self._known(names)}")

    def load_file(self, path: str | Path) -> list[str]:
        """Import a local plugin file (``--plugin``) and add what ``adopt`` finds in it; returns the names added."""
        self._discover()
        before = set(self._entries)  # a file's own ``register`` calls may add entries as it is imported
        module = import_file(Path(path), self.kind, f"run without --plugin {path}")
        try:
            self._entries.update(self._adopt(Path(path).stem, module))
        except (TypeError, ValueError) as error:
            raise BenchError(f"plugin file {path}: {error}") from None
        return sorted(set(self._entries) - before)

    def reference(self, name: str) -> Any:
        """The callable ``module:callable`` (imported from Python's path, then the current folder) or
        ``path/to/file.py:callable`` names, or a refusal that says what to fix."""
        module_name, _, attribute = name.rpartition(":")
        try:
            if module_name.endswith(".py"):
                module = import_file(Path(module_name), self.kind, f"name another {self.kind}")
            else:
                module = import_here_too(module_name)
            found = getattr(module, attribute)
        except BenchError as error:
            raise BenchError(f"{self.kind} {name!r} could not be loaded: {error}") from None
        except ModuleNotFoundError as error:
            missing = error.name or module_name
            if module_name != missing and not module_name.startswith(f"{missing}."):  # found; what it imports is not
                raise BenchError(f"{self.kind} {name!r} could not be loaded: {module_name} imports {missing}, which "
                                 "is not installed; install it") from None
            if difflib.get_close_matches(module_name, self.entries(), n=1, cutoff=0.5):
                raise self.unknown(name, like=module_name) from None
            raise BenchError(f"{self.kind} {name!r}: no module {missing} on Python's path (PYTHONPATH) nor in the "
                             f"current folder {Path.cwd()}; run bench where it is, add its folder to PYTHONPATH "
                             f"(PYTHONPATH=path/to/folder bench run ...), or give the file: "
                             f"path/to/{module_name.replace('.', '/')}.py:{attribute}") from None
        except Exception as error:  # the user's code
            raise BenchError(f"{self.kind} {name!r} could not be loaded ({type(error).__name__}: {error}); give "
                             f"module:callable or path/to/file.py:callable, {self.wanted}") from None
        if not callable(found):
            raise BenchError(f"{self.kind} {name!r}: {attribute} is not callable; give {self.wanted}")
        return found

    def _discover(self) -> None:
        """Every installed entry point of the group, once, the built-ins first; one that fails to load, or whose
        names are taken, is skipped with a warning."""
        if self._discovered:
            return
        self._discovered = True
        found_in = importlib.metadata.entry_points(group=self.group)
        for entry_point in sorted(found_in, key=lambda entry_point: not _builtin(entry_point)):
            try:
                found = dict(self._adopt(entry_point.name, entry_point.load()))
                taken = [name for name, entry in found.items() if self._entries.get(name, entry) is not entry]
                if taken:
                    raise ValueError(f"the name {taken[0]!r} is taken by another {self.kind}")
            except Exception as error:  # the plugin's code: any error
                warnings.warn(f"{self.kind} plugin {entry_point.name!r} ({entry_point.value}) could not be loaded "
                              f"and is skipped: {type(error).__name__}: {error}", stacklevel=4)
                continue
            self._entries.update(found)
            if _builtin(entry_point):
                self._builtin += [name for name in found if name not in self._builtin]


def _builtin(entry_point: importlib.metadata.EntryPoint) -> bool:
    return entry_point.dist is not None and entry_point.dist.name == DISTRIBUTION


def import_file(path: Path, kind: str, instead: str) -> ModuleType:
    """Execute a local Python file as the module ``bench_plugin_<stem>``, or a refusal naming the line that failed;
    ``kind`` is what the file is expected to define, ``instead`` the way around a file that does not import."""
    if not path.is_file():
        raise BenchError(f"plugin file {path} does not exist; pass the path of a .py file that defines a {kind}")
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
                         f"fix it, or {instead}") from None
    return module


def import_here_too(name: str) -> ModuleType:
    """``importlib.import_module(name)``, looking in the current folder too for a top-level module Python's path
    lacks, as ``python -m`` and ``module:app`` servers (uvicorn, gunicorn) do: the folder is appended to
    ``sys.path``, so it never shadows an installed module."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        here = str(Path.cwd())
        if error.name != name.partition(".")[0] or here in sys.path:
            raise
        sys.path.append(here)
        importlib.invalidate_caches()
        return importlib.import_module(name)
