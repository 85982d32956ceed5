"""Atomic writes: every file bench writes appears whole or not at all.

A temporary is named after the process writing it, ``.<name>.<pid>@<host>.<random>.tmp`` beside
its target, so that a later write can tell the temporaries of a killed process (SIGKILL, a
power cut) from those of one still writing, and remove only the former.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.errors import BenchError

FULL_DISK = (errno.ENOSPC, errno.EDQUOT)  # no space left, disk quota exceeded
WRITE_ELSEWHERE = "free space on that disk, or write elsewhere: --out for results, --data-dir (or BENCH_DATA) for data"
HOST = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())  # a process id means something on its own machine only


def umask() -> int:
    """The process's umask (reading it means setting it, so it is set back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def full_disk_refused(target: Path, fix: str) -> Iterator[None]:
    """A full disk or quota while writing ``target`` becomes one BenchError line naming it and ``fix``, not a traceback."""
    try:
        yield
    except OSError as error:
        if error.errno not in FULL_DISK:
            raise
        raise BenchError(f"cannot write {target}: {error.strerror or os.strerror(error.errno)}; {fix}") from None


def temporary_prefix(target: Path) -> str:
    """The start of this process's temporaries for ``target`` (see the module docstring)."""
    return f".{target.name}.{os.getpid()}@{HOST}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0 checks that the process exists and sends nothing
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's
        return True
    return True


def remove_stale_temporaries(target: Path) -> None:
    """Remove the temporaries for ``target`` that processes of this machine left when they died; never one whose
    process is alive, nor one of another machine (whose process ids this one cannot check)."""
    stale = re.compile(rf"\.{re.escape(target.name)}\.(\d+)@{re.escape(HOST)}\.[^.]+\.tmp")
    for sibling in target.parent.glob(".*.tmp"):
        match = stale.fullmatch(sibling.name)
        if match and not _alive(int(match[1])):
            if sibling.is_dir() and not sibling.is_symlink():
                shutil.rmtree(sibling, ignore_errors=True)
            else:
                sibling.unlink(missing_ok=True)


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write through ``write(temporary_path)`` then rename, so a reader never sees half a file; stale temporaries
    of ``path`` are removed first, and a full disk is refused in one line, its temporary removed."""
    with full_disk_refused(path, WRITE_ELSEWHERE):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path), suffix=".tmp")
        os.close(handle)
        try:
            write(Path(temporary))
            os.chmod(temporary, 0o666 & ~umask())  # mkstemp's 0600 would hide results from the user's group
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
