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
import itertools
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from .. import actors
from ._chunk import Chunk
from ._queues import FifoQueue, KeyedQueue
from ._stage import Stage
from ._stats import StageCounters, StageStatistics
from ._travel import missing_module, module_of
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
        self._queue: FifoQueue | KeyedQueue = (
            FifoQueue() if stage.key is None else KeyedQueue(stage.key)
        )
        self._changed = trio.Event()
        self._refreshing = False
        self._suspect: dict[str, float] = {}  # node name -> since when
        # Rate limit: a token bucket of a second's worth (see set_rate).
        self.rate = stage.rate
        self._tokens = max(1.0, stage.rate or 0.0)
        self._filled = trio.current_time()
        # Stall alarm: batches at workers, since when; whether this stall was told.
        self._flying: dict[int, tuple[float, Chunk]] = {}
        self._stalled = False
        # Resize: how many workers the pool should have, those on their way
        # out (no new items), and the next child's number.
        self.target = stage.workers
        self._retiring: set[actors.ActorRef] = set()
        self._numbers = itertools.count(stage.workers)
        self._tag = ""
        # What its workers run: the same class for all of them, made once.
        if stage.is_actor:
            worker = actor_worker(stage.fn, stage.batch is not None, stage.timeout)  # type: ignore[arg-type]
            self._runs: tuple[type[actors.Actor], tuple[Any, ...]] = (worker, ())
        else:
            self._runs = (FunctionWorker, (stage.fn, stage.batch is not None, stage.timeout))

    # ------------------------------------------------------------------ starting

    def spec(self, tag: str, number: int) -> actors.ChildSpec:
        """The pool's child number ``number``, for its supervisor."""
        cls, args = self._runs
        name = f"{tag}.{self.stage.name}.{number}"
        return actors.ChildSpec(cls, args, name=name, on=self.stage.placement)

    async def start(self, node: actors.Node, tag: str) -> None:
        """Start the pool's supervisor and its workers.

        The stage's code goes by reference; if a node cannot import it, by
        value from then on (see ``_travel``).
        """
        self._tag = tag
        try:
            self.supervisor = await self._spawn(node, tag)
        except Exception as exc:
            module = module_of(self.stage)
            if module is None or not missing_module(exc):
                raise
            self.core.shipping.add(module)
            self.supervisor = await self._spawn(node, tag)
        await self._refresh()

    async def _spawn(self, node: actors.Node, tag: str) -> actors.ActorRef:
        return await node.spawn(
            actors.Supervisor,
            [self.spec(tag, i) for i in range(self.stage.workers)],
            max_restarts=max(10, 4 * self.stage.workers),
            period=5.0,
            retry=0.2,
            name=f"{tag}.{self.stage.name}",
        )

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
        refused = self._queue.put(chunk)
        self.counters.queued += n - len(refused)
        for i, error in refused:  # its key function raised: no attempt would do better
            self.counters.failed += 1
            self.core.failed(self.index, chunk.ids[i], chunk.values[i], error, 0)
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
            self._queue.due(trio.current_time())
            limited = False
            while self._queue:
                size = self._batch_size()
                if self.rate is not None:
                    size = min(size, self._take_tokens(size))
                    if not size:
                        limited = True
                        break
                worker = self._worker(self._queue.avoid())
                if worker is None:
                    if self.rate is not None:
                        self._tokens += size  # not spent after all
                    break
                chunk = self._queue.take(size)
                if self.rate is not None and len(chunk) < size:
                    self._tokens += size - len(chunk)
                self.load[worker] += 1
                self.counters.queued -= len(chunk)
                self.counters.in_flight += len(chunk)
                nursery.start_soon(self._attempt, worker, chunk)
            wake_at = self._queue.wake_at()
            if limited and self.rate:
                refill = max((1 - self._tokens) / self.rate, 0.001)  # at least a moment
                wake_at = min(wake_at, trio.current_time() + refill)
            if self._suspect:
                wake_at = min(wake_at, min(self._suspect.values()) + SUSPECT_FOR)
            with trio.move_on_at(wake_at):
                await changed.wait()

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
            if load >= CREDIT or worker.node in suspect or worker in self._retiring:
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

    def _take_tokens(self, wanted: int) -> int:
        # As many of ``wanted`` as the bucket allows now (whole items).
        assert self.rate is not None
        now = trio.current_time()
        burst = max(1.0, self.rate)
        self._tokens = min(burst, self._tokens + (now - self._filled) * self.rate)
        self._filled = now
        granted = min(wanted, int(self._tokens + 1e-9))  # no token lost to rounding
        self._tokens -= granted
        return granted

    def set_rate(self, rate: float | None) -> None:
        """Items per second through the stage from now on (``None``: no limit)."""
        if rate is not None and rate <= 0:
            raise ValueError(f"a rate is positive (or None), got {rate!r}")
        self.rate = rate
        self._tokens = min(self._tokens, max(1.0, rate or 0.0))
        self._filled = trio.current_time()
        self._wake()

    def check_stall(self, now: float, stall_after: float) -> None:
        """Tell (once per stall) if items are in flight and none completed for ``stall_after``."""
        if not self._flying:
            self._stalled = False
            return
        since = max(self.counters.last_completed, min(t for t, _ in self._flying.values()))
        if now - since < stall_after:
            self._stalled = False
            return
        if self._stalled:
            return
        self._stalled = True
        self.counters.stalls += 1
        started, oldest = min(self._flying.values(), key=lambda entry: entry[0])
        log.warning(
            "pipeline %r: stage %r stalled: %d items in flight, none completed for %.0f s; "
            "workers %s; oldest item %d (attempt %d, out for %.0f s)",
            self.core.pipeline.name,
            self.name,
            self.counters.in_flight,
            now - since,
            ", ".join(f"{w.name}@{w.node}" for w in self.workers) or "none",
            oldest.ids[0],
            oldest.attempts[0] + 1,
            now - started,
        )

    async def resize(self, workers: int) -> None:
        """Grow or shrink the pool to ``workers`` while items flow.

        New workers are placed as ``on=`` says; removed ones get no new
        items, finish what they hold, then stop.
        """
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"a stage needs at least 1 worker, got {workers!r}")
        assert self.supervisor is not None
        current = [w for w in self.workers if w not in self._retiring]
        self.target = workers
        for _ in range(workers - len(current)):
            await self.supervisor.ask("start_child", self.spec(self._tag, next(self._numbers)))
        leaving = sorted(current, key=lambda w: self.load[w])[: max(0, len(current) - workers)]
        self._retiring.update(leaving)
        await self._refresh()
        for worker in leaving:
            while self.load[worker]:
                await self._changed.wait()  # it finishes what it holds
            await self.supervisor.ask("terminate_child", worker)
            self._retiring.discard(worker)
        await self._refresh()

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

    async def _attempt(self, worker: actors.ActorRef, chunk: Chunk) -> None:
        # One batch at one worker; whatever happens, every item ends up
        # forwarded, retried, failed or queued again.
        stage = self.stage
        timeout = None if stage.timeout is None else stage.timeout * len(chunk) + 1.0
        attempts = [a + 1 for a in chunk.attempts]
        started = trio.current_time()
        if not self._flying:
            self.counters.last_completed = max(self.counters.last_completed, started)
        self._flying[id(chunk)] = (started, chunk)
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
            del self._flying[id(chunk)]
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
            self._queue.settled(chunk, list(range(len(chunk))))
            self.core.forward(self.index, Chunk(chunk.ids, chunk.paths, data))
            return
        results: list[tuple[int, Any]] = (
            [(OK, outs) for outs in data] if kind == MANY else data if kind == MIXED else []
        )
        done = _Outputs()
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
        self._queue.settled(chunk, [i for i, (status, _) in enumerate(results) if status == OK])
        self.core.forward(self.index, Chunk(done.ids, done.paths, done.values))
        if retry:
            self._failed(chunk, [i for i, _ in retry], [e for _, e in retry], worker)
        if skipped:
            self.counters.queued += len(skipped)
            self._queue.again(chunk, skipped)

    def _outputs(self, done: _Outputs, chunk: Chunk, i: int, outputs: list[Any]) -> None:
        # Item ``i`` made ``outputs``: a generator's each get a path of their own.
        index, path = chunk.ids[i], chunk.path(i)
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
        again: list[int] = []
        attempts: list[int] = []
        gone: list[int] = []
        for i, error in zip(which, errors, strict=True):
            tried = chunk.attempts[i] + 1
            if not isinstance(error, _GONE):
                self.errors.append(f"{type(error).__name__}: {error}")
            if tried >= self.stage.max_attempts:
                self.counters.failed += 1
                gone.append(i)
                self.core.failed(self.index, chunk.ids[i], chunk.values[i], error, tried)
                continue
            again.append(i)
            attempts.append(tried)
        if gone:
            self._queue.settled(chunk, gone)
        if not again:
            return
        self.counters.retried += len(again)
        self.counters.queued += len(again)
        most = max(attempts)
        delay = min(BACKOFF * 2 ** (most - 1), BACKOFF_MAX) * (0.5 + random.random())
        self._queue.retry(chunk, again, attempts, delay, worker)
        self._wake()

    def _unencodable(self, chunk: Chunk, error: actors.CodecError) -> None:
        # The batch could not leave this node: the items that cannot travel
        # fail at once (no attempt would do better), the others go again.
        encode: Callable[[object], Any] = self.core.node.codec.encode
        keep: list[int] = []
        bad: list[int] = []
        for i, value in enumerate(chunk.values):
            try:
                encode(value)
            except actors.CodecError as exc:
                self.counters.failed += 1
                bad.append(i)
                self.core.failed(self.index, chunk.ids[i], value, exc, chunk.attempts[i] + 1)
            else:
                keep.append(i)
        if not bad:  # not the items' fault after all
            self._failed_all(chunk, error, None)
            return
        self._queue.settled(chunk, bad)
        if keep:
            self.counters.queued += len(keep)
            self._queue.again(chunk, keep)
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
                if len(self.workers) >= self.target and not self._suspect:
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


class _Outputs:
    """The outputs of a batch's items, gathered for the next stage."""

    __slots__ = ("ids", "paths", "values")

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.paths: list[tuple[int, ...]] = []
        self.values: list[Any] = []
