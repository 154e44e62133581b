"""What a run tells of each stage: :class:`StageStatistics`, cheap to take at any time."""

from __future__ import annotations

import collections
from typing import Any

import attrs
import trio

__all__ = ["StageCounters", "StageStatistics"]

#: The seconds over which ``rate`` is measured.
RATE_WINDOW = 5.0
#: How many per-item times the percentiles are taken over (the latest).
SAMPLES = 1024


@attrs.frozen
class StageStatistics:
    """One stage of a run, as it stands.

    Attributes:
        name: The stage's name.
        received: Items that reached the stage.
        completed: Items it finished (their outputs went on).
        failed: Items it gave up on (each a :class:`~trimq.pipelines.Failure`).
        retried: Attempts that failed and were tried again.
        in_flight: Items at its workers now.
        queued: Items waiting for a worker.
        workers: Where its workers run now: ``(actor name, node name)`` each.
        rate: Items completed per second, over the last few seconds.
        p50: Median seconds per item (a batch's time over its items).
        p99: 99th percentile of the same.
        stalls: Times the stage stalled: items in flight, none completed for
            its ``stall_after`` seconds.

    .. versionadded:: 0.1
    """

    name: str
    received: int = 0
    completed: int = 0
    failed: int = 0
    retried: int = 0
    in_flight: int = 0
    queued: int = 0
    workers: tuple[tuple[str, str], ...] = ()
    rate: float = 0.0
    p50: float = 0.0
    p99: float = 0.0
    stalls: int = 0

    def as_plain(self) -> dict[str, Any]:
        """The figures as plain data (what the event bus publishes)."""
        return {**attrs.asdict(self), "workers": [list(w) for w in self.workers]}


class StageCounters:
    """The running counts behind :class:`StageStatistics`: a few additions per batch."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.received = 0
        self.completed = 0
        self.failed = 0
        self.retried = 0
        self.in_flight = 0
        self.queued = 0
        self.stalls = 0
        self.last_completed = trio.current_time()  # or when items first went out
        self._done: collections.deque[tuple[float, int]] = collections.deque()
        self._times: collections.deque[float] = collections.deque(maxlen=SAMPLES)

    def finished(self, count: int, seconds: float) -> None:
        """A batch of ``count`` items came back after ``seconds``."""
        now = trio.current_time()
        self.last_completed = now
        self._done.append((now, count))
        self._times.append(seconds / count if count else seconds)
        self._trim(now)

    def recent_time(self) -> float:
        """Seconds per item of the latest batch (0 before the first)."""
        return self._times[-1] if self._times else 0.0

    def _trim(self, now: float) -> None:
        done = self._done
        while done and done[0][0] < now - RATE_WINDOW:
            done.popleft()

    def snapshot(self, workers: tuple[tuple[str, str], ...]) -> StageStatistics:
        """The figures now."""
        now = trio.current_time()
        self._trim(now)
        times = sorted(self._times)
        p50 = times[len(times) // 2] if times else 0.0
        p99 = times[min(len(times) - 1, (len(times) * 99) // 100)] if times else 0.0
        return StageStatistics(
            name=self.name,
            received=self.received,
            completed=self.completed,
            failed=self.failed,
            retried=self.retried,
            in_flight=self.in_flight,
            queued=self.queued,
            workers=workers,
            rate=sum(n for _, n in self._done) / RATE_WINDOW,
            p50=p50,
            p99=p99,
            stalls=self.stalls,
        )
