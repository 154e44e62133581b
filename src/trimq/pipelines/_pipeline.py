"""A chain of stages: :class:`Pipeline`, run to the end (``run``) or streamed (``open``)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

import cloudpickle
import trio

from .. import actors
from ._errors import PipelineError
from ._run import Run, RunCore
from ._stage import Stage
from ._travel import Shipping

__all__ = ["Pipeline"]

#: Source items in the pipeline at once, at most (a bound on its memory).
WINDOW = 8192
#: Seconds without a completion that make a stage with items in flight stalled.
STALL_AFTER = 30.0


class Pipeline:
    """Stages that items flow through, each a supervised pool of workers.

    Args:
        stages: The stages, in order: each one's outputs are the next one's inputs.
        name: The pipeline's name (statistics on the event bus under
            ``trimq.pipeline.<name>``, worker names, logs).
        window: At most this many source items in the pipeline at once; the
            source is pulled only as they finish (bounded memory).
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

    def __repr__(self) -> str:
        return f"Pipeline({', '.join(s.name for s in self.stages)}, name={self.name!r})"

    async def run(
        self,
        node: actors.Node,
        source: Iterable[Any] | AsyncIterable[Any],
        *,
        progress: bool | None = None,
    ) -> list[Any]:
        """Push every item of ``source`` through; return every output, in source order.

        The outputs of one source item stay together, in the order its
        generator stages made them.

        Raises:
            PipelineError: Some items failed for good (``.failures``, in
                source order, and ``.results``, the outputs of the others),
                or the run could not go on (a stage's pool gave up).
            ValueError: A stage placed on other nodes (``on=``) cannot travel.
        """
        async with self._running(node, source, keep=True, progress=progress) as core:
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
    ) -> AsyncIterator[Run]:
        """Run the pipeline for the block, streaming: iterate the :class:`Run`
        for outputs in completion order (``source`` may be endless).

        Leaving the block stops the run and its workers, whatever is in flight.

        Raises:
            ValueError: A stage placed on other nodes (``on=``) cannot travel.
        """
        async with self._running(node, source, keep=False, progress=progress) as core:
            yield Run(core)

    @contextlib.asynccontextmanager
    async def _running(
        self,
        node: actors.Node,
        source: Iterable[Any] | AsyncIterable[Any],
        *,
        keep: bool,
        progress: bool | None,
    ) -> AsyncIterator[RunCore]:
        self._check_travel()
        # The block's own exception is raised as itself, after the run's tasks
        # are cancelled: not wrapped in the nursery's ExceptionGroup.
        raised: BaseException | None = None
        shipping = Shipping()
        try:
            async with trio.open_nursery() as nursery:
                core = RunCore(
                    self, node, nursery, source, keep=keep, window=self.window, shipping=shipping
                )
                try:
                    await core.start()
                    show = progress if progress is not None else sys.stderr.isatty()
                    if show:
                        from ._progress import show_progress

                        nursery.start_soon(show_progress, core)
                    yield core
                except BaseException as exc:
                    raised = exc
                finally:
                    nursery.cancel_scope.cancel()
                    with trio.CancelScope(shield=True), trio.move_on_after(10):
                        await core.publish()  # the last figures, for whoever watches
                        await core.stop()
        finally:
            shipping.close()
        if raised is not None:
            raise raised

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
