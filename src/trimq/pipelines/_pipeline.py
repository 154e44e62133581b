"""A chain of stages: :class:`Pipeline`, run to the end (``run``) or streamed (``open``)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import Any

import cloudpickle
import trio

from .. import actors
from ._errors import PipelineError
from ._journal import Journal
from ._run import Run, RunCore
from ._stage import Stage
from ._travel import Shipping

__all__ = ["Pipeline"]

#: Source items in the pipeline at once, at most (a bound on its memory).
WINDOW = 8192
#: Seconds without a completion that make a stage with items in flight stalled.
STALL_AFTER = 30.0
#: Seconds a run has to drain after SIGINT or SIGTERM.
DRAIN_TIMEOUT = 30.0


class Pipeline:
    """Stages that items flow through, each a supervised pool of workers.

    Args:
        stages: The stages, in order: each one's outputs are the next one's inputs.
        name: The pipeline's name (statistics on the event bus under
            ``trimq.pipeline.<name>``, worker names, logs).
        window: At most this many source items in the pipeline at once; the
            source is pulled only as they finish (bounded memory).
        drain_timeout: Seconds a run has to drain after SIGINT or SIGTERM
            (see :meth:`run`) before it is stopped.
        dead_letter: A function or :class:`Stage` that gets each item that
            failed for good, as its :class:`Failure` (a sink for dead
            letters): such items are then not the run's failures, so
            ``run()`` does not raise for them. An item the dead-letter stage
            itself fails is a failure as before.
        stall_after: Seconds without a completion, while items are in
            flight, after which a stage counts as stalled: a WARNING naming
            it, its workers and its oldest item, and ``stalls`` in its
            statistics (a stage's own ``stall_after`` comes first).

    Raises:
        ValueError: No stages, two stages with one name, a window below 1,
            or a ``stall_after`` that is not positive.

    Example::

        pipeline = Pipeline(Stage(parse, workers=4), Stage(store, batch=500), name="etl")
        outputs = await pipeline.run(node, lines)

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        *stages: Stage,
        name: str = "pipeline",
        window: int = WINDOW,
        stall_after: float = STALL_AFTER,
        dead_letter: Stage | Callable[..., Any] | None = None,
        drain_timeout: float = DRAIN_TIMEOUT,
    ) -> None:
        if not stages:
            raise ValueError("a Pipeline needs at least one Stage")
        for stage in stages:
            if not isinstance(stage, Stage):
                raise TypeError(
                    f"a Pipeline is made of Stage objects, not {stage!r}: wrap it, Stage({stage!r})"
                )
        for i, stage in enumerate(stages):
            if stage.key is not None and any(s.kind in ("gen", "agen") for s in stages[:i]):
                raise ValueError(
                    f"stage {stage.name!r} has key= but a generator stage comes before it: "
                    "per-key source order after a generator is not supported yet"
                )
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must differ (give Stage(name=...)): {names}")
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        if stall_after <= 0:
            raise ValueError(f"stall_after must be positive, got {stall_after}")
        self.stages = tuple(stages)
        self.name = name
        self.window = window
        self.stall_after = stall_after
        if dead_letter is not None and not isinstance(dead_letter, Stage):
            dead_letter = Stage(dead_letter, name="dead_letter")
        if dead_letter is not None and dead_letter.name in names:
            raise ValueError(
                f"the dead-letter stage needs a name of its own, not {dead_letter.name!r}"
            )
        self.dead_letter: Stage | None = dead_letter
        self.drain_timeout = drain_timeout

    def __repr__(self) -> str:
        return f"Pipeline({', '.join(s.name for s in self.stages)}, name={self.name!r})"

    async def run(
        self,
        node: actors.Node,
        source: Iterable[Any] | AsyncIterable[Any],
        *,
        progress: bool | None = None,
        journal: str | os.PathLike[str] | None = None,
    ) -> list[Any]:
        """Push every item of ``source`` through; return every output, in source order.

        The outputs of one source item stay together, in the order its
        generator stages made them.

        In the main thread, SIGINT and SIGTERM drain the run: nothing more
        is taken from the source, what is in flight finishes (at most
        ``drain_timeout`` seconds), the journal is flushed, and the signal
        then ends the program as it would have (KeyboardInterrupt, or
        SystemExit with status 128 + the signal). A second signal stops at
        once; the journal stays consistent either way.

        With ``journal`` (a file path), the run keeps a journal in SQLite:
        run the same program again with the same journal and the same
        (replayable) source after a crash, and the items it finished are not
        done again (their outputs and failures come from the journal); only
        those in flight at the crash are redone.

        Raises:
            PipelineError: Some items failed for good (``.failures``, in
                source order, and ``.results``, the outputs of the others),
                or the run could not go on (a stage's pool gave up).
            ValueError: A stage placed on other nodes (``on=``) cannot travel.
            JournalError: ``journal`` belongs to another pipeline, or the
                source differs from the one it recorded.
        """
        async with self._running(
            node, source, keep=True, progress=progress, journal=journal
        ) as core:
            await core.done.wait()
            failures = core.sorted_failures()
            results = core.results()
        if core.error is not None:
            raise core.error
        if failures:
            raise PipelineError(
                f"pipeline {self.name!r}: {len(failures)} items failed "
                f"(first: item {failures[0].index} at stage {failures[0].stage!r}: "
                f"{failures[0].error!r})",
                failures,
                results,
            )
        return results

    @contextlib.asynccontextmanager
    async def open(
        self,
        node: actors.Node,
        source: Iterable[Any] | AsyncIterable[Any],
        *,
        progress: bool | None = None,
        journal: str | os.PathLike[str] | None = None,
    ) -> AsyncIterator[Run]:
        """Run the pipeline for the block, streaming: iterate the :class:`Run`
        for outputs in completion order (``source`` may be endless).

        Leaving the block stops the run and its workers, whatever is in flight.

        Raises:
            ValueError: A stage placed on other nodes (``on=``) cannot travel.
        """
        async with self._running(
            node, source, keep=False, progress=progress, journal=journal
        ) as core:
            yield Run(core)

    @contextlib.asynccontextmanager
    async def _running(
        self,
        node: actors.Node,
        source: Iterable[Any] | AsyncIterable[Any],
        *,
        keep: bool,
        progress: bool | None,
        journal: str | os.PathLike[str] | None,
    ) -> AsyncIterator[RunCore]:
        self._check_travel()
        # Flushed at least every window's worth of items: a crash redoes at
        # most the items in flight and those done since the last flush.
        log = (
            Journal.open(journal, self.signature(), flush_rows=self.window)
            if journal is not None
            else None
        )
        core: RunCore | None = None
        # The block's own exception is raised as itself, after the run's tasks
        # are cancelled: not wrapped in the nursery's ExceptionGroup.
        raised: BaseException | None = None
        shipping = Shipping()
        try:
            async with trio.open_nursery() as nursery:
                core = RunCore(
                    self,
                    node,
                    nursery,
                    source,
                    keep=keep,
                    window=self.window,
                    shipping=shipping,
                    journal=log,
                )
                try:
                    await core.start()
                    if threading.current_thread() is threading.main_thread():
                        nursery.start_soon(self._on_signals, core, nursery)
                    show = progress if progress is not None else sys.stderr.isatty()
                    if show:
                        from ._progress import show_progress

                        nursery.start_soon(show_progress, core)
                    yield core
                except trio.Cancelled:
                    raise  # the run's own deadline (a drain), or a scope outside: as is
                except BaseException as exc:
                    raised = exc
                finally:
                    nursery.cancel_scope.cancel()
                    with trio.CancelScope(shield=True), trio.move_on_after(10):
                        await core.publish()  # the last figures, for whoever watches
                        await core.stop()
        finally:
            shipping.close()
            if log is not None:
                # A run that went to its end is finished (a rerun replays it
                # all); one cut short keeps what it did, for a rerun to resume.
                if core is not None and core.complete:
                    log.finish()
                log.close()
        if core is not None and core.signalled is not None:
            # Drained (or stopped) on a signal: end the program as it would have.
            if core.signalled == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + core.signalled)
        if raised is not None:
            raise raised

    async def _on_signals(self, core: RunCore, nursery: trio.Nursery) -> None:
        # The first signal drains the run within drain_timeout; a second stops it.
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                if core.signalled is not None:
                    nursery.cancel_scope.cancel()
                    return
                core.signalled = signum
                core.drain()
                nursery.cancel_scope.deadline = trio.current_time() + self.drain_timeout

    def signature(self) -> str:
        """What a journal of this pipeline is written for: its name and stages."""
        stages = ",".join(
            f"{s.name}:{'actor' if s.is_actor else 'function'}:{s.kind}" for s in self.stages
        )
        return f"{self.name}[{stages}]"

    def _check_travel(self) -> None:
        # A stage for other nodes ships its function or class: say so now.
        for stage in self.stages:
            if stage.on is None:
                continue
            try:
                cloudpickle.dumps(stage.fn)
            except Exception as exc:
                raise ValueError(
                    f"stage {stage.name!r} runs on other nodes (on={stage.on!r}) but its "
                    f"{'class' if stage.is_actor else 'function'} cannot be sent there: {exc}"
                ) from exc
