"""A stage's pool as the running pipeline drives it: its workers, its queue, its batches.

The node that runs the pipeline owns every item: it hands a batch to a
worker (an ask), and the item is done at this stage only when the answer
comes back. A worker that crashes, stalls past ``timeout`` or is lost with
its node fails the attempt of every item of its batch; those go out again
after a back-off with jitter, to another worker where there is one, until
``max_attempts``. Each worker holds at most ``CREDIT`` batches at once, so
nothing piles up in a mailbox; a lone item goes out at once, and items that
queue up meanwhile go out together in the next batch.
"""

from __future__ import annotations

import collections
import contextlib
import heapq
import itertools
import logging
import math
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from .. import actors
from ._chunk import Chunk
from ._stage import Stage
from ._stats import StageCounters, StageStatistics
from ._worker import FAILED, MANY, MIXED, OK, ONE, SKIPPED, FunctionWorker, actor_worker

if TYPE_CHECKING:
    from ._run import RunCore

__all__ = ["StagePool"]

log = logging.getLogger("trimq.pipelines")

#: Batches a worker holds at once: one it works on, one waiting in its mailbox.
CREDIT = 2
#: Items per batch at most, for stages without ``batch=``: fewer when the
#: queue is short (spread over the workers with credit) or the items slow
#: (a batch should take about BATCH_SECONDS).
BATCH = 512
BATCH_SECONDS = 0.02
#: Back-off before a retry: BACKOFF * 2**(attempt - 1) seconds, at most
#: BACKOFF_MAX, times a random factor in [0.5, 1.5).
BACKOFF = 0.05
BACKOFF_MAX = 5.0
#: Seconds a node whose worker was found gone gets no items while others can
#: take them (its supervisor moves its workers once the node is declared lost).
SUSPECT_FOR = 5.0
#: Errors that mean the worker (or its node) is gone, not the item's fault.
_GONE = (actors.ActorStoppedError, actors.ActorNotFoundError)


class StagePool:
    """One stage of a running pipeline: its supervisor, workers, queue and counters."""

    def __init__(self, core: RunCore, index: int, stage: Stage) -> None:
        self.core = core
        self.index = index
        self.stage = stage
        self.name = stage.name
        self.counters = StageCounters(stage.name)
        self.size = stage.batch or BATCH
        self.generator = stage.kind in ("gen", "agen")
        self.supervisor: actors.ActorRef | None = None
        self.workers: list[actors.ActorRef] = []
        self.load: collections.Counter[actors.ActorRef] = collections.Counter()
        # The last few errors of the stage's own making (not a worker found gone).
        self.errors: collections.deque[str] = collections.deque(maxlen=5)
        self._queue: collections.deque[Chunk] = collections.deque()
        self._later: list[tuple[float, int, Chunk]] = []  # retries, by when they may go
        self._order = itertools.count()
        self._changed = trio.Event()
        self._refreshing = False
        self._suspect: dict[str, float] = {}  # node name -> since when

    # ------------------------------------------------------------------ starting

    def specs(self, tag: str) -> list[actors.ChildSpec]:
        """The pool's children, for its supervisor."""
        stage = self.stage
        if stage.is_actor:
            cls = actor_worker(stage.fn, stage.batch is not None, stage.timeout)  # type: ignore[arg-type]
            args: tuple[Any, ...] = ()
        else:
            cls, args = FunctionWorker, (stage.fn, stage.batch is not None, stage.timeout)
        return [
            actors.ChildSpec(cls, args, name=f"{tag}.{stage.name}.{i}", on=stage.placement)
            for i in range(stage.workers)
        ]

    async def start(self, node: actors.Node, tag: str) -> None:
        """Start the pool's supervisor and its workers."""
        self.supervisor = await node.spawn(
            actors.Supervisor,
            self.specs(tag),
            max_restarts=max(10, 4 * self.stage.workers),
            period=5.0,
            retry=0.2,
            name=f"{tag}.{self.stage.name}",
        )
        await self._refresh()

    async def stop(self) -> None:
        """Stop the pool (its supervisor stops its workers)."""
        if self.supervisor is not None:
            with contextlib.suppress(actors.ActorNotFoundError, actors.ActorStoppedError):
                await self.supervisor.stop()

    # ------------------------------------------------------------------ items in

    def put(self, chunk: Chunk) -> None:
        """Items for this stage."""
        n = len(chunk)
        if not n:
            return
        self.counters.received += n
        self.counters.queued += n
        self._queue.append(chunk)
        self._wake()

    def _wake(self) -> None:
        # The dispatcher holds the event set here; it waits on the next one.
        self._changed.set()
        self._changed = trio.Event()

    @property
    def backlog(self) -> int:
        """Items waiting here (queued or for a retry)."""
        return self.counters.queued

    def statistics(self) -> StageStatistics:
        """The stage's figures now."""
        return self.counters.snapshot(tuple((w.name, w.node) for w in self.workers))

    # ------------------------------------------------------------------ dispatching

    async def dispatch(self, nursery: trio.Nursery) -> None:
        """Hand batches to workers with credit, as items and credit come (runs for the run)."""
        while True:
            changed = self._changed
            self._due()
            while self._queue:
                worker = self._worker(self._queue[0].avoid)
                if worker is None:
                    break
                chunk = self._next_batch()
                self.load[worker] += 1
                self.counters.queued -= len(chunk)
                self.counters.in_flight += len(chunk)
                nursery.start_soon(self._attempt, worker, chunk)
            wake_at = self._later[0][0] if self._later else math.inf
            if self._suspect:
                wake_at = min(wake_at, min(self._suspect.values()) + SUSPECT_FOR)
            with trio.move_on_at(wake_at):
                await changed.wait()

    def _due(self) -> None:
        # Retries whose back-off is over join the queue.
        now = trio.current_time()
        later = self._later
        while later and later[0][0] <= now:
            self._queue.append(heapq.heappop(later)[2])

    def _worker(self, avoid: actors.ActorRef | None) -> actors.ActorRef | None:
        # The least loaded worker with credit left, not ``avoid`` if another
        # has some, and none on a node just found gone (see SUSPECT_FOR).
        suspect = self._suspect
        if suspect:
            now = trio.current_time()
            for node in [n for n, since in suspect.items() if now - since >= SUSPECT_FOR]:
                del suspect[node]
        best: actors.ActorRef | None = None
        for worker in self.workers:
            load = self.load[worker]
            if load >= CREDIT or worker.node in suspect:
                continue
            if (
                best is None
                or (best == avoid and worker != avoid)
                or (load < self.load[best] and (worker != avoid or best == avoid))
            ):
                best = worker
        if best is None and not self.workers:
            self._refresh_soon()
        return best

    def _batch_size(self) -> int:
        # ``batch=`` stages take what they asked for; others as the module says.
        if self.stage.batch is not None:
            return self.size
        free = sum(max(0, CREDIT - self.load[w]) for w in self.workers) or 1
        size = min(self.size, -(-self.counters.queued // free))  # ceil: spread evenly
        per_item = self.counters.recent_time()
        if per_item > 0:
            size = min(size, int(BATCH_SECONDS / per_item))
        return max(1, size)

    def _next_batch(self) -> Chunk:
        # Up to _batch_size() items from the queue's head (retries that avoid
        # the same worker go together).
        queue = self._queue
        head = queue[0]
        size = self._batch_size()
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

    async def _attempt(self, worker: actors.ActorRef, chunk: Chunk) -> None:
        # One batch at one worker; whatever happens, every item ends up
        # forwarded, retried, failed or queued again.
        stage = self.stage
        timeout = None if stage.timeout is None else stage.timeout * len(chunk) + 1.0
        attempts = [a + 1 for a in chunk.attempts]
        started = trio.current_time()
        try:
            answer = await worker.ask(
                "pipeline_batch",
                self.core.id,
                stage.name,
                chunk.ids,
                chunk.paths,
                attempts,
                chunk.values,
                timeout=timeout,
            )
        except actors.CodecError as exc:
            self._unencodable(chunk, exc)
            return
        except _GONE as exc:
            self._lost(worker)
            self._failed_all(chunk, exc, worker)
            return
        except Exception as exc:  # a timeout, or an error the worker itself raised
            self._failed_all(chunk, exc, worker)
            return
        finally:
            self.load[worker] -= 1
            self.counters.in_flight -= len(chunk)
            self._wake()
        self.counters.finished(len(chunk), trio.current_time() - started)
        self._answered(chunk, answer, worker)

    # ------------------------------------------------------------------ outcomes

    def _answered(self, chunk: Chunk, answer: Any, worker: actors.ActorRef) -> None:
        kind, data = answer
        if kind == ONE:
            self.counters.completed += len(chunk)
            self.core.forward(self.index, Chunk(chunk.ids, chunk.paths, data))
            return
        results: list[tuple[int, Any]] = (
            [(OK, outs) for outs in data] if kind == MANY else data if kind == MIXED else []
        )
        done = Chunk([], [], [])
        retry: list[tuple[int, BaseException]] = []
        skipped: list[int] = []
        for i, (status, payload) in enumerate(results):
            if status == OK:
                self._outputs(done, chunk, i, payload)
            elif status == FAILED:
                retry.append((i, payload))
            elif status == SKIPPED:
                skipped.append(i)
        self.counters.completed += len(results) - len(retry) - len(skipped)
        self.core.forward(self.index, done)
        if retry:
            self._failed(chunk, [i for i, _ in retry], [e for _, e in retry], worker)
        if skipped:
            again = Chunk(
                [chunk.ids[i] for i in skipped],
                [chunk.path(i) for i in skipped],
                [chunk.values[i] for i in skipped],
                [chunk.attempts[i] for i in skipped],
            )
            self.counters.queued += len(again)
            self._queue.appendleft(again)

    def _outputs(self, done: Chunk, chunk: Chunk, i: int, outputs: list[Any]) -> None:
        # Item ``i`` made ``outputs``: a generator's each get a path of their own.
        index, path = chunk.ids[i], chunk.path(i)
        assert done.paths is not None
        if not self.generator:
            done.ids.extend([index] * len(outputs))
            done.paths.extend([path] * len(outputs))
            done.values.extend(outputs)
            self.core.expanded(index, len(outputs))
            return
        for j, out in enumerate(outputs):
            done.ids.append(index)
            done.paths.append((*path, j))
            done.values.append(out)
        self.core.expanded(index, len(outputs))

    def _failed_all(
        self, chunk: Chunk, error: BaseException, worker: actors.ActorRef | None
    ) -> None:
        self._failed(chunk, list(range(len(chunk))), [error] * len(chunk), worker)

    def _failed(
        self,
        chunk: Chunk,
        which: list[int],
        errors: list[BaseException],
        worker: actors.ActorRef | None,
    ) -> None:
        # Items ``which`` of ``chunk`` failed an attempt: those with attempts
        # left go out again together, after the back-off of the most tried.
        retry = Chunk([], [], [], [], worker)
        assert retry.paths is not None
        for i, error in zip(which, errors, strict=True):
            attempts = chunk.attempts[i] + 1
            if not isinstance(error, _GONE):
                self.errors.append(f"{type(error).__name__}: {error}")
            if attempts >= self.stage.max_attempts:
                self.counters.failed += 1
                self.core.failed(self.index, chunk.ids[i], chunk.values[i], error, attempts)
                continue
            retry.ids.append(chunk.ids[i])
            retry.paths.append(chunk.path(i))
            retry.values.append(chunk.values[i])
            retry.attempts.append(attempts)
        if not len(retry):
            return
        self.counters.retried += len(retry)
        self.counters.queued += len(retry)
        most = max(retry.attempts)
        delay = min(BACKOFF * 2 ** (most - 1), BACKOFF_MAX) * (0.5 + random.random())
        heapq.heappush(self._later, (trio.current_time() + delay, next(self._order), retry))
        self._wake()

    def _unencodable(self, chunk: Chunk, error: actors.CodecError) -> None:
        # The batch could not leave this node: the items that cannot travel
        # fail at once (no attempt would do better), the others go again.
        encode: Callable[[object], Any] = self.core.node.codec.encode
        keep: list[int] = []
        for i, value in enumerate(chunk.values):
            try:
                encode(value)
            except actors.CodecError as exc:
                self.counters.failed += 1
                self.core.failed(self.index, chunk.ids[i], value, exc, chunk.attempts[i] + 1)
            else:
                keep.append(i)
        if len(keep) == len(chunk):  # not the items' fault after all
            self._failed_all(chunk, error, None)
            return
        if keep:
            again = Chunk(
                [chunk.ids[i] for i in keep],
                [chunk.path(i) for i in keep],
                [chunk.values[i] for i in keep],
                [chunk.attempts[i] for i in keep],
            )
            self.counters.queued += len(again)
            self._queue.appendleft(again)
            self._wake()

    # ------------------------------------------------------------------ workers

    def _lost(self, worker: actors.ActorRef) -> None:
        # A worker (or its node) is gone: stop handing it items until the
        # supervisor says where its successor is.
        if worker in self.workers:
            self.workers.remove(worker)
        self._suspect[worker.node] = trio.current_time()
        self._refresh_soon()

    def _refresh_soon(self) -> None:
        if not self._refreshing:
            self._refreshing = True
            self.core.nursery.start_soon(self._refresh_until_found)

    async def _refresh_until_found(self) -> None:
        delay = 0.02
        try:
            while True:
                await self._refresh()
                if len(self.workers) == self.stage.workers and not self._suspect:
                    return
                await trio.sleep(delay)  # the supervisor places them as nodes come back
                delay = min(delay * 2, 0.5)
        finally:
            self._refreshing = False

    async def _refresh(self) -> None:
        assert self.supervisor is not None
        try:
            children = await self.supervisor.ask("children")
        except _GONE as exc:
            self.core.fatal(
                f"stage {self.name!r}: its workers' supervisor is gone ({exc}): they crashed "
                f"more often than its restart intensity allows. Last errors: "
                + ("; ".join(self.errors) or "none seen")
            )
            return
        self.workers = list(children)
        placed = {worker.node for worker in self.workers}
        for node in [n for n in self._suspect if n not in placed]:
            del self._suspect[node]  # its workers moved: nothing left to avoid there
        self._wake()
