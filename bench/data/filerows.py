"""Rows of an array in a ``.npy`` file, read from the file when asked for: images larger than memory.

numpy memory-maps such a file (``numpy.load(mmap_mode="r")``) without reading it, but every page a process reads
through the mapping stays in its resident memory while the mapping lives, so a pass over the file would hold all of
it. ``FileRows`` reads the rows asked for with positioned reads into a fresh array instead: a process that reads a
split a batch at a time holds one batch of it, whatever the split's size (``python -m benchmarks streamed-memory``).
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FileRows:
    """The rows of a C-ordered array stored at ``offset`` in the file ``path``: all of them, or those at ``index``."""

    path: str
    offset: int  # bytes before the first row
    dtype: np.dtype
    shape: tuple[int, ...]  # of the whole array in the file
    index: np.ndarray | None = None  # the file's rows this view holds, in its order; None: all

    @classmethod
    def of(cls, array: np.ndarray) -> FileRows | None:
        """The rows of ``array`` where it is a whole ``.npy`` file memory-mapped by ``numpy.load``; else None (a slice
        of one, or an array in memory)."""
        if isinstance(array, np.memmap) and isinstance(array.base, mmap.mmap) and array.flags.c_contiguous:
            return cls(str(array.filename), int(array.offset), array.dtype, tuple(array.shape))
        return None

    def __len__(self) -> int:
        return self.shape[0] if self.index is None else len(self.index)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def take(self, index: np.ndarray) -> FileRows:
        """The rows at ``index`` of this view, still unread."""
        index = np.asarray(index, dtype=np.int64)
        return FileRows(self.path, self.offset, self.dtype, self.shape, index if self.index is None else self.index[index])

    def __getitem__(self, key: slice | np.ndarray) -> np.ndarray:
        """The rows at ``key`` (a slice, or positions in this view), read from the file: one read per run of
        consecutive rows."""
        if isinstance(key, slice):
            chosen = range(len(self))[key]
            rows = np.arange(chosen.start, chosen.stop, chosen.step, dtype=np.int64)
        else:
            rows = np.asarray(key, dtype=np.int64).reshape(-1)
        if self.index is not None:
            rows = self.index[rows]
        if len(rows) and (rows.min() < 0 or rows.max() >= self.shape[0]):
            raise IndexError(f"rows {rows.min()}..{rows.max()} of {self.path}, which holds {self.shape[0]}")
        out = np.empty((len(rows), *self.shape[1:]), self.dtype)
        row_bytes = out.itemsize * int(np.prod(self.shape[1:], dtype=np.int64))
        starts = np.flatnonzero(np.diff(rows, prepend=-2) != 1)  # where a run of consecutive rows begins
        with open(self.path, "rb") as file:
            for begin, end in zip(starts, [*starts[1:], len(rows)]):
                file.seek(self.offset + int(rows[begin]) * row_bytes)
                wanted = (end - begin) * row_bytes
                if file.readinto(memoryview(out[begin:end]).cast("B")) != wanted:
                    raise OSError(f"{self.path} ended before row {rows[end - 1]}: was it truncated since it was opened?")
        return out
