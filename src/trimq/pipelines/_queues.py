"""What waits at a stage for a worker: in arrival order, or per key (``Stage(key=)``).

A :class:`FifoQueue` hands out items in the order they came, retries when
their back-off is over. A :class:`KeyedQueue` keeps one line per key and
hands out only the head of each: the next item of a key goes out once the
one before it is settled (done, or failed for good), so a key's items go
through the stage one at a time and in order, whatever retries, crashes or
lost nodes happen; a failing item holds up its own key only.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import math
from collections.abc import Callable, Hashable
from typing import Any

import trio

from .. import actors
from ._chunk import Chunk

__all__ = ["FifoQueue", "KeyedQueue"]


class FifoQueue:
    """Items in arrival order; retries rejoin when their back-off is over."""

    def __init__(self) -> None:
        self._queue: collections.deque[Chunk] = collections.deque()
        self._later: list[tuple[float, int, Chunk]] = []
        self._order = itertools.count()

    def put(self, chunk: Chunk) -> list[tuple[int, BaseException]]:
        """Queue ``chunk``; returns the items that cannot be queued (none here)."""
        self._queue.append(chunk)
        return []

    def due(self, now: float) -> None:
        """Retries whose back-off is over join the queue."""
        later = self._later
        while later and later[0][0] <= now:
            self._queue.append(heapq.heappop(later)[2])

    def __bool__(self) -> bool:
        return bool(self._queue)

    def avoid(self) -> actors.ActorRef | None:
        """The worker the next batch had better not go to."""
        return self._queue[0].avoid

    def wake_at(self) -> float:
        """When the next retry may go."""
        return self._later[0][0] if self._later else math.inf

    def take(self, size: int) -> Chunk:
        """Up to ``size`` items from the head (retries that avoid the same worker go together)."""
        queue = self._queue
        head = queue[0]
        if len(head) > size:
            return head.take(size)
        batch = queue.popleft()
        while queue and batch.avoid == queue[0].avoid:
            room = size - len(batch)
            if room <= 0:
                break
            nxt = queue[0]
            if len(nxt) > room:
                batch.extend(nxt.take(room))
                break
            batch.extend(queue.popleft())
        return batch

    def settled(self, chunk: Chunk, which: list[int]) -> None:
        """These items are done with at this stage (nothing to do in arrival order)."""

    def retry(
        self,
        chunk: Chunk,
        which: list[int],
        attempts: list[int],
        delay: float,
        avoid: actors.ActorRef | None,
    ) -> None:
        """These items go out again after ``delay``, avoiding ``avoid``."""
        retry = chunk.pick(which, attempts, avoid)
        heapq.heappush(self._later, (trio.current_time() + delay, next(self._order), retry))

    def again(self, chunk: Chunk, which: list[int]) -> None:
        """These items were not attempted: first in line again."""
        self._queue.appendleft(chunk.pick(which))


class _Item:
    __slots__ = ("attempts", "avoid", "index", "path", "value")

    def __init__(self, index: int, path: tuple[int, ...], value: Any, attempts: int) -> None:
        self.index, self.path, self.value, self.attempts = index, path, value, attempts
        self.avoid: actors.ActorRef | None = None


class KeyedQueue:
    """One line per key; only each line's head goes out (see the module docs)."""

    def __init__(self, key: Callable[[Any], Hashable]) -> None:
        self._key = key
        self._lines: dict[Hashable, collections.deque[_Item]] = {}
        self._ready: collections.deque[Hashable] = collections.deque()  # heads free to go
        self._later: list[tuple[float, int, Hashable]] = []  # heads waiting out a back-off
        self._order = itertools.count()

    def put(self, chunk: Chunk) -> list[tuple[int, BaseException]]:
        """Queue ``chunk``'s items on their keys' lines; returns those whose key
        function raised (position in ``chunk``, error)."""
        refused: list[tuple[int, BaseException]] = []
        lines, key = self._lines, self._key
        for i in range(len(chunk)):
            value = chunk.values[i]
            try:
                k = key(value)
                hash(k)
            except Exception as exc:
                refused.append((i, exc))
                continue
            line = lines.get(k)
            if line is None:
                line = lines[k] = collections.deque()
                self._ready.append(k)
            line.append(_Item(chunk.ids[i], chunk.path(i), value, chunk.attempts[i]))
        return refused

    def due(self, now: float) -> None:
        """Heads whose back-off is over are free to go."""
        later = self._later
        while later and later[0][0] <= now:
            self._ready.append(heapq.heappop(later)[2])

    def __bool__(self) -> bool:
        return bool(self._ready)

    def avoid(self) -> actors.ActorRef | None:
        """The worker the next batch had better not go to."""
        return self._lines[self._ready[0]][0].avoid

    def wake_at(self) -> float:
        """When the next head's back-off ends."""
        return self._later[0][0] if self._later else math.inf

    def take(self, size: int) -> Chunk:
        """The heads of up to ``size`` keys: one item per key."""
        ready, lines = self._ready, self._lines
        first = lines[ready[0]][0].avoid
        keys: list[Hashable] = []
        while ready and len(keys) < size and lines[ready[0]][0].avoid == first:
            keys.append(ready.popleft())
        heads = [lines[k][0] for k in keys]
        batch = Chunk(
            [h.index for h in heads],
            [h.path for h in heads],
            [h.value for h in heads],
            [h.attempts for h in heads],
            first,
        )
        batch.keys = keys
        return batch

    def settled(self, chunk: Chunk, which: list[int]) -> None:
        """These heads are done with: their keys' next items may go."""
        assert chunk.keys is not None
        lines = self._lines
        for i in which:
            k = chunk.keys[i]
            line = lines[k]
            line.popleft()
            if line:
                self._ready.append(k)
            else:
                del lines[k]

    def retry(
        self,
        chunk: Chunk,
        which: list[int],
        attempts: list[int],
        delay: float,
        avoid: actors.ActorRef | None,
    ) -> None:
        """These heads go out again after ``delay``; their keys wait with them."""
        assert chunk.keys is not None
        due = trio.current_time() + delay
        for i, tried in zip(which, attempts, strict=True):
            k = chunk.keys[i]
            head = self._lines[k][0]
            head.attempts, head.avoid = tried, avoid
            heapq.heappush(self._later, (due, next(self._order), k))

    def again(self, chunk: Chunk, which: list[int]) -> None:
        """These heads were not attempted: free to go at once."""
        assert chunk.keys is not None
        for i in reversed(which):
            self._ready.appendleft(chunk.keys[i])
