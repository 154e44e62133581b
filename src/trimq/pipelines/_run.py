"""A pipeline while it runs: items admitted from the source, moved stage to stage, delivered.

:class:`RunCore` owns every item from the moment the source gives it until
its last output is delivered or it fails for good. It admits items only
while fewer than ``window`` source items are in the pipeline, so an endless
source into a slow stage runs in bounded memory: the source is pulled as
items finish, never faster.
"""

from __future__ import annotations

import collections
import itertools
import logging
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sized
from typing import TYPE_CHECKING, Any

import trio

from .. import actors
from ._chunk import Chunk
from ._errors import Failure, PipelineError
from ._journal import Journal, JournalState
from ._pool import StagePool
from ._sequence import Sequencer
from ._stats import StageStatistics
from ._travel import Shipping

if TYPE_CHECKING:
    from ._pipeline import Pipeline

__all__ = ["Run", "RunCore"]

log = logging.getLogger("trimq.pipelines")

#: Seconds between the statistics a run publishes on the event bus.
PUBLISH_EVERY = 1.0


class RunCore:
    """The moving parts of one run (see the module docs)."""

    def __init__(
        self,
        pipeline: Pipeline,
        node: actors.Node,
        nursery: trio.Nursery,
        source: Iterable[Any] | AsyncIterable[Any],
        *,
        keep: bool,
        window: int,
        shipping: Shipping,
        journal: Journal | None = None,
    ) -> None:
        self.id = secrets.token_hex(8)
        self.shipping = shipping  # the modules that go by value (see _travel)
        # The journal, and what it held when the run began (a rerun's resume).
        self.journal = journal
        state = journal.state() if journal is not None else None
        # A journal with nothing in it is a first run: nothing to resume from.
        resumes = state is not None and (state.completed or state.admitted or state.failed)
        self._resumed: JournalState | None = state if resumes else None
        self._journal_outputs: dict[int, list[tuple[tuple[int, ...], Any]]] = {}
        #: Items of this run done by an earlier one (their outputs from the journal).
        self.replayed = 0
        #: The signal (SIGINT, SIGTERM) that drained the run, if one did.
        self.signalled: int | None = None
        self._failed_indexes: set[int] = set()
        self._committing = False  # a journal commit runs in a thread
        self.pipeline = pipeline
        self.node = node
        self.nursery = nursery
        self.pools = [StagePool(self, i, stage) for i, stage in enumerate(pipeline.stages)]
        self._last = len(self.pools) - 1  # the stage whose outputs are the run's
        # The dead-letter stage, if any, runs after the others (its outputs go nowhere).
        self._dead: int | None = None
        if pipeline.dead_letter is not None:
            self._dead = len(self.pools)
            self.pools.append(StagePool(self, self._dead, pipeline.dead_letter))
        # Keyed stages after the first get their items in source order.
        self._sequencers = {
            i: Sequencer() for i, stage in enumerate(pipeline.stages) if i and stage.key is not None
        }
        self.failures: list[Failure] = []
        self._source = source
        #: How many items the source has, if it can tell (progress: total, ETA).
        self.total: int | None = len(source) if isinstance(source, Sized) else None
        #: Source items done with (every output delivered, or failed).
        self.finished = 0
        self._keep = keep  # run(): keep outputs by source index, for source order
        # run(): outputs by source index; with no generator stage, one each.
        self._flat = not any(pool.generator for pool in self.pools[: self._last + 1])
        self._kept: dict[int, Any] = {}
        self._out: collections.deque[Any] = collections.deque()  # open(): to be iterated
        self._window = window
        self._live: dict[int, int] = {}  # source index -> its items still in the pipeline
        self._admitted = 0
        self._draining = False
        self._source_done = False
        self._changed = trio.Event()
        self.done = trio.Event()
        self.error: PipelineError | None = None

    # ------------------------------------------------------------------ starting

    async def start(self) -> None:
        """Start every stage's pool, then take from the source."""
        tag = f"{self.pipeline.name}-{self.id[:6]}"
        for pool in self.pools:
            await pool.start(self.node, tag)
        for pool in self.pools:
            self.nursery.start_soon(pool.dispatch, self.nursery)
        self.nursery.start_soon(self._admit)
        self.nursery.start_soon(self._publish)
        self.nursery.start_soon(self._watch_stalls)

    async def _admit(self) -> None:
        # Pull the source as the window allows; a sync source gives whole
        # batches at once, an async one an item at a time (they are batched
        # as they queue up).
        first = self.pools[0]
        index = 0
        source = self._source
        try:
            if isinstance(source, AsyncIterable):
                items = aiter(source)
                while True:
                    await self._room()  # before taking: never hold what cannot go in
                    if self._draining:
                        break
                    try:
                        value = await anext(items)
                    except StopAsyncIteration:
                        break
                    if self._resume(index, value):
                        index += 1
                        continue
                    self._live[index] = 1
                    self._admitted += 1
                    if self.journal is not None:
                        self.journal.admitted([index], [value])
                    first.put(Chunk([index], None, [value]))
                    index += 1
            else:
                iterator = iter(source)
                size = first.size
                while True:
                    await self._room()
                    if self._draining:
                        break
                    room = min(size, self._window - self._admitted - len(self._out))
                    values = list(itertools.islice(iterator, room))
                    if not values:
                        break
                    ids = list(range(index, index + len(values)))
                    if self._resumed is not None:
                        assert self.journal is not None
                        self.journal.check_many(ids, values)  # one query a chunk
                        keep = [
                            i
                            for i, v in zip(ids, values, strict=True)
                            if not self._resume(i, v, checked=True)
                        ]
                        values = [values[i - index] for i in keep]
                        index += len(ids)
                        ids = keep
                        if not ids:
                            await trio.lowlevel.checkpoint()
                            continue
                    else:
                        index += len(values)
                    for i in ids:
                        self._live[i] = 1
                    self._admitted += len(values)
                    if self.journal is not None:
                        fresh = self._resumed is None  # then ids are a range: cheaper to keep
                        self.journal.admitted(
                            range(ids[0], ids[0] + len(ids)) if fresh else ids, values
                        )
                    first.put(Chunk(ids, None, values))
                    await trio.lowlevel.checkpoint()
        except Exception as exc:
            self.fatal(f"the source raised {type(exc).__name__}: {exc}", exc)
        finally:
            self._source_done = True
            self._check_done()

    def _resume(self, index: int, value: Any, *, checked: bool = False) -> bool:
        # A rerun: an item an earlier run finished is not done again; its
        # outputs (or its failure) come from the journal. True if so.
        resumed = self._resumed
        if resumed is None:
            return False
        journal = self.journal
        assert journal is not None
        if not checked and (
            index in resumed.completed or index in resumed.admitted or index in resumed.failed
        ):
            journal.check(index, value)  # a source that is not replayable stops here
        if index in resumed.failed:
            self.failures.append(resumed.failed[index])
            self.replayed += 1
            return True
        if index not in resumed.completed:
            return False
        outputs = resumed.completed[index]
        values = [outputs] if self._flat else [v for _, v in outputs]
        if self._keep:
            self._kept[index] = outputs
        else:
            self._out.extend(values)
        self.finished += 1
        self.replayed += 1
        self._notify()
        return True

    async def _room(self) -> None:
        # Outputs not yet read count too: a slow reader slows the source.
        while self._admitted + len(self._out) >= self._window and not self._draining:
            await self._changed.wait()

    def _notify(self) -> None:
        # Whoever waits holds the event set here; later waiters get a new one.
        self._changed.set()
        self._changed = trio.Event()

    # ------------------------------------------------------------------ items moving on

    def forward(self, stage: int, chunk: Chunk) -> None:
        """Stage ``stage`` finished these items: on to the next stage, or out."""
        if not len(chunk):
            return
        if stage == self._dead:  # dead letters handled: their items are done with
            self._settle(chunk.ids)
            return
        nxt = stage + 1
        if nxt <= self._last:
            sequencer = self._sequencers.get(nxt)
            self.pools[nxt].put(chunk if sequencer is None else sequencer.arrive(chunk))
            return
        self._deliver(chunk)
        journal = self.journal
        if journal is not None and not self._committing and journal.due():
            # Committed in a thread (sqlite3 lets go of the GIL), while items flow.
            self._committing = True
            self.nursery.start_soon(self._commit, journal.take())

    async def _commit(self, batch: Any) -> None:
        journal = self.journal
        assert journal is not None
        try:
            await trio.to_thread.run_sync(journal.commit, batch)
        finally:
            self._committing = False

    def expanded(self, index: int, outputs: int) -> None:
        """One item of source item ``index`` became ``outputs`` items (0: filtered out)."""
        live = self._live
        live[index] += outputs - 1
        if not live[index]:
            self._finished(index)
            self._notify()

    def failed(
        self, stage: int, index: int, item: Any, error: BaseException, attempts: int
    ) -> None:
        """An item failed for good at ``stage``."""
        name = self.pools[stage].name
        failure = Failure(item, name, error, attempts, index)
        self._failed_indexes.add(index)
        if self.journal is not None:
            self.journal.failed(index, failure)
        if self._dead is not None and stage != self._dead:
            # To the dead-letter stage, with its Failure: not the run's failure.
            self.pools[self._dead].put(Chunk([index], [()], [failure]))
            for later, sequencer in self._sequencers.items():
                if later > stage:
                    self.pools[later].put(sequencer.gone(index))
            return
        self.failures.append(failure)
        for later, sequencer in self._sequencers.items():
            if later > stage:  # it will never reach that keyed stage: do not wait for it
                self.pools[later].put(sequencer.gone(index))
        log.warning(
            "pipeline %r: item %d failed at stage %r after %d attempts: %r",
            self.pipeline.name, index, name, attempts, error,
        )  # fmt: skip
        self._live[index] -= 1
        if not self._live[index]:
            self._finished(index)
        self._notify()

    def _deliver(self, chunk: Chunk) -> None:
        # Per chunk, not per item, wherever it can be.
        live = self._live
        ids = chunk.ids
        journal = self.journal
        if self._keep:
            kept = self._kept
            if self._flat:
                kept.update(zip(ids, chunk.values, strict=True))
            else:
                for i, index in enumerate(ids):
                    kept.setdefault(index, []).append((chunk.path(i), chunk.values[i]))
        else:
            self._out.extend(chunk.values)
            if journal is not None and not self._flat:
                buffered = self._journal_outputs
                for i, index in enumerate(ids):
                    buffered.setdefault(index, []).append((chunk.path(i), chunk.values[i]))
        if self._flat:  # one item per source item, so each is done now
            if journal is not None:
                journal.done_many(ids, chunk.values)
            for index in ids:
                del live[index]
            self._admitted -= len(ids)
            self.finished += len(ids)
            self._check_done()
        else:
            for index in ids:
                live[index] -= 1
                if not live[index]:
                    self._finished(index)
        self._notify()

    def _settle(self, ids: list[int]) -> None:
        # Items done with outside the run's outputs (dead letters).
        live = self._live
        for index in ids:
            live[index] -= 1
            if not live[index]:
                self._finished(index)
        self._notify()

    def _finished(self, index: int) -> None:
        del self._live[index]
        self._admitted -= 1
        self.finished += 1
        journal = self.journal
        if journal is not None and not self._flat:
            outputs = (
                self._kept.get(index, []) if self._keep else self._journal_outputs.pop(index, [])
            )
            if index not in self._failed_indexes:  # a failure of its own is journaled
                journal.done(index, outputs)
        self._check_done()

    def _check_done(self) -> None:
        if (self._source_done or self._draining) and not self._live:
            self.done.set()
            self._notify()

    @property
    def complete(self) -> bool:
        """Whether the run went to its end: the source exhausted, every item done."""
        return (
            self.done.is_set()
            and self._source_done
            and not self._draining
            and self.error is None
            and not self._live
        )

    def drain(self) -> None:
        """Take nothing more from the source; what is in flight finishes."""
        self._draining = True
        self._notify()
        self._check_done()

    def fatal(self, message: str, cause: BaseException | None = None) -> None:
        """The run cannot go on: it ends with a :class:`PipelineError` (from ``cause``)."""
        if self.error is None:
            self.error = PipelineError(
                f"pipeline {self.pipeline.name!r}: {message}", self.sorted_failures(), []
            )
            self.error.__cause__ = cause
            log.error("%s", self.error)
        self.done.set()
        self._notify()

    # ------------------------------------------------------------------ results

    def results(self) -> list[Any]:
        """run(): every output, in source order (and path order within an item)."""
        kept = self._kept
        if self._flat:
            return [kept[index] for index in sorted(kept)]
        return [value for index in sorted(kept) for _, value in sorted(kept[index], key=_path)]

    def sorted_failures(self) -> list[Failure]:
        """The failures, in source order."""
        return sorted(self.failures, key=lambda f: f.index)

    async def next_output(self) -> Any:
        """open(): the next output in completion order.

        Raises:
            StopAsyncIteration: The run is over.
            PipelineError: The run could not go on.
        """
        while not self._out:
            if self.error is not None:
                raise self.error
            if self.done.is_set():
                raise StopAsyncIteration
            await self._changed.wait()
        output = self._out.popleft()
        if len(self._out) + self._admitted + 1 == self._window:
            self._notify()  # room again for the source
        return output

    def statistics(self) -> tuple[StageStatistics, ...]:
        """Each stage's figures now."""
        return tuple(pool.statistics() for pool in self.pools)

    async def _publish(self) -> None:
        # About once a second, for another process to watch the run (and
        # once more at its end: see publish).
        while not self.done.is_set():
            with trio.move_on_after(PUBLISH_EVERY):
                await self.done.wait()
            if not self.done.is_set():
                await self.publish()

    async def publish(self) -> None:
        """Publish the statistics now, on ``trimq.pipeline.<name>``."""
        stages = [s.as_plain() for s in self.statistics()]
        await self.node.publish(
            f"trimq.pipeline.{self.pipeline.name}", {"run": self.id, "stages": stages}
        )

    def stall_after(self, pool: StagePool) -> float:
        """Seconds without a completion that make ``pool`` stalled."""
        return pool.stage.stall_after or self.pipeline.stall_after

    async def _watch_stalls(self) -> None:
        # Look a few times per shortest stall_after: cheap, a pass over the pools.
        every = min(self.stall_after(pool) for pool in self.pools) / 4
        while not self.done.is_set():
            with trio.move_on_after(every):
                await self.done.wait()
            now = trio.current_time()
            for pool in self.pools:
                pool.check_stall(now, self.stall_after(pool))

    def pool(self, stage: str) -> StagePool:
        """The pool of the stage named ``stage``.

        Raises:
            KeyError: No stage of that name.
        """
        for pool in self.pools:
            if pool.name == stage:
                return pool
        raise KeyError(f"pipeline {self.pipeline.name!r} has no stage {stage!r}")

    async def stop(self) -> None:
        """Stop every pool's workers."""
        for pool in self.pools:
            await pool.stop()


def _path(entry: tuple[tuple[int, ...], Any]) -> tuple[int, ...]:
    return entry[0]


class Run:
    """A running pipeline, from :meth:`Pipeline.open <trimq.pipelines.Pipeline.open>`.

    Iterate it (``async for output in run``) for the outputs, in the order
    they complete; iteration ends once the source is exhausted (or the run
    drained) and every item is done.

    .. versionadded:: 0.1
    """

    def __init__(self, core: RunCore) -> None:
        self._core = core

    @property
    def id(self) -> str:
        """The run's id (see :class:`~trimq.pipelines.ItemInfo`)."""
        return self._core.id

    @property
    def failures(self) -> list[Failure]:
        """The items that failed so far, in source order."""
        return self._core.sorted_failures()

    def statistics(self) -> tuple[StageStatistics, ...]:
        """Each stage's figures now, in stage order."""
        return self._core.statistics()

    async def drain(self) -> None:
        """Take nothing more from the source and wait for what is in flight to finish.

        Outputs not yet iterated stay available to iterate.
        """
        self._core.drain()
        await self._core.done.wait()

    def set_rate(self, stage: str, rate: float | None) -> None:
        """Let ``rate`` items per second through ``stage`` from now on (``None``: no limit).

        Raises:
            KeyError: No stage of that name.
            ValueError: A rate that is not positive.
        """
        self._core.pool(stage).set_rate(rate)

    async def resize(self, stage: str, *, workers: int) -> None:
        """Grow or shrink ``stage``'s pool to ``workers`` while items flow.

        New workers are placed as the stage's ``on=`` says; removed ones take
        no new items and finish what they hold before they stop, so nothing
        is lost or done twice. Returns once the pool has its new size.

        Raises:
            KeyError: No stage of that name.
            ValueError: ``workers`` below 1.
        """
        await self._core.pool(stage).resize(workers)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        return await self._core.next_output()
