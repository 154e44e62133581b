"""Items into a keyed stage in source order, whatever order the stages before finished them.

A keyed stage (``Stage(key=)``) promises source order per key. Its items
come from the stage before it, whose workers finish them in any order, so
they wait here until every item of a lower source index has reached this
stage or left the pipeline (failed for good), and go on in index order.
Only the stages before it hold them up, never the keyed stage itself.
"""

from __future__ import annotations

import heapq
from typing import Any

from ._chunk import Chunk

__all__ = ["Sequencer"]


class Sequencer:
    """Releases items in source-index order (see the module docs)."""

    def __init__(self) -> None:
        self._waiting: list[tuple[int, tuple[int, ...], int, Any]] = []  # (index, path, n, value)
        self._arrived = 0
        self._passed: set[int] = set()  # indexes past the stages before, above ``_next``
        self._next = 0  # the lowest index not past them yet

    def arrive(self, chunk: Chunk) -> Chunk:
        """Items reached the keyed stage: those now in order, in order."""
        for i in range(len(chunk)):
            index = chunk.ids[i]
            heapq.heappush(self._waiting, (index, chunk.path(i), self._arrived, chunk.values[i]))
            self._arrived += 1
            self._passed.add(index)
        return self._release()

    def gone(self, index: int) -> Chunk:
        """Source item ``index`` left the pipeline before the keyed stage."""
        self._passed.add(index)
        return self._release()

    def _release(self) -> Chunk:
        passed = self._passed
        while self._next in passed:
            passed.discard(self._next)
            self._next += 1
        ids: list[int] = []
        paths: list[tuple[int, ...]] = []
        values: list[Any] = []
        waiting = self._waiting
        while waiting and waiting[0][0] < self._next:
            index, path, _, value = heapq.heappop(waiting)
            ids.append(index)
            paths.append(path)
            values.append(value)
        return Chunk(ids, paths, values)
