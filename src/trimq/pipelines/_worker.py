"""The workers of a stage's pool: actors that run a batch of items and say how each went.

A worker is asked ``pipeline_batch(run, stage, ids, paths, attempts,
values)``: the items' source indexes, their paths (``None``: all empty),
their attempt numbers and the values. It answers one of:

* ``(ONE, outputs)``: every item succeeded with exactly one output each;
* ``(MANY, [outputs, ...])``: every item succeeded, each with a list of
  outputs (generator and batch stages);
* ``(MIXED, [(status, payload), ...])``: per item, ``OK`` and its list of
  outputs, ``FAILED`` and the exception, or ``SKIPPED`` (not attempted: an
  Actor stage crashed before it; it goes out again without counting an
  attempt).

Lists of plain values keep the common answer cheap to encode: Python pays
per batch, not per item, for everything but the stage's own call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import trio

from .. import actors
from ._item import ItemInfo, reset_items, set_items
from ._stage import Kind, kind_of

__all__ = ["FAILED", "MANY", "MIXED", "OK", "ONE", "SKIPPED", "FunctionWorker", "actor_worker"]

ONE: Final = 0
MANY: Final = 1
MIXED: Final = 2
OK: Final = 0
FAILED: Final = 1
SKIPPED: Final = 2

Answer = tuple[int, list[Any]]


class _Batch:
    """What one batch's calls see through :func:`~._item.current_item`."""

    __slots__ = ("at", "attempts", "ids", "paths", "run", "stage")

    def __init__(
        self,
        run: str,
        stage: str,
        ids: list[int],
        paths: list[tuple[int, ...]] | None,
        attempts: list[int],
    ) -> None:
        self.run, self.stage, self.ids, self.paths, self.attempts = run, stage, ids, paths, attempts
        self.at = 0  # the item being handled

    def info(self, i: int) -> ItemInfo:
        path = tuple(self.paths[i]) if self.paths is not None else ()
        return ItemInfo(self.run, self.stage, self.ids[i], path, self.attempts[i])


async def _outputs(kind: Kind, result: Any) -> list[Any]:
    # The outputs of one call, by how the callable gives them.
    if kind == "sync":
        return [result]
    if kind == "async":
        return [await result]
    if kind == "gen":
        return list(result)
    return [x async for x in result]


async def _call_each(
    fn: Callable[[Any], Any],
    kind: Kind,
    batch: _Batch,
    values: list[Any],
    timeout: float | None,
    stop_at_failure: bool,
) -> tuple[Answer, BaseException | None]:
    """Call ``fn`` on each value; the answer, and the error that stopped it (if told to stop)."""
    token = set_items(batch)
    try:
        start = 0
        outs: list[Any] = []  # one output each, while every item so far gave one
        if kind == "sync" and timeout is None:
            # The hot path: a plain function, nothing to await, no scope.
            append = outs.append
            try:
                for start, value in enumerate(values):
                    batch.at = start
                    append(fn(value))
                else:
                    return (ONE, outs), None
            except Exception as exc:
                # The general loop below goes on after ``start``, the item that raised.
                return await _call_rest(
                    fn, kind, batch, values, timeout, stop_at_failure, outs, exc
                )
        return await _call_rest(fn, kind, batch, values, timeout, stop_at_failure, outs, None)
    finally:
        reset_items(token)


async def _call_rest(
    fn: Callable[[Any], Any],
    kind: Kind,
    batch: _Batch,
    values: list[Any],
    timeout: float | None,
    stop_at_failure: bool,
    outs: list[Any],
    error: BaseException | None,
) -> tuple[Answer, BaseException | None]:
    # ``outs``: the outputs of the items before; ``error``: what the next one
    # raised, if it was called already. Each item from there on gets a status.
    results: list[tuple[int, Any]] = [(OK, [out]) for out in outs]
    stopped: BaseException | None = None
    start = len(outs)
    if error is not None:
        results.append((FAILED, error))
        stopped = error if stop_at_failure else None
        start += 1
    for i in range(start, len(values)):
        if stopped is not None:
            results.append((SKIPPED, None))
            continue
        batch.at = i
        try:
            with trio.fail_after(timeout) if timeout is not None else _nothing():
                outputs = await _outputs(kind, fn(values[i]))
        except Exception as exc:
            results.append((FAILED, exc))
            if stop_at_failure:
                stopped = exc
            continue
        results.append((OK, outputs))
    if all(status == OK for status, _ in results):
        if kind in ("sync", "async"):
            return (ONE, [outputs[0] for _, outputs in results]), None
        return (MANY, [outputs for _, outputs in results]), None
    return (MIXED, results), stopped


async def _call_batch(
    fn: Callable[[list[Any]], Any],
    kind: Kind,
    batch: _Batch,
    values: list[Any],
    timeout: float | None,
) -> Answer:
    """A ``batch`` stage: one call for the whole list; it must give as many outputs."""
    token = set_items(batch)
    try:
        with trio.fail_after(timeout * len(values)) if timeout is not None else _nothing():
            outs = await _outputs(kind, fn(values))
            if kind in ("sync", "async"):
                outs = outs[0]
            outs = list(outs)
        if len(outs) != len(values):
            raise ValueError(
                f"batch stage {batch.stage!r} returned {len(outs)} outputs for "
                f"{len(values)} items: it must return a list as long as the one it got"
            )
    except Exception as exc:
        return (MIXED, [(FAILED, exc)] * len(values))
    finally:
        reset_items(token)
    return (ONE, outs)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class FunctionWorker(actors.Actor):
    """A worker of a function stage: calls it on each item of a batch.

    A failure fails that item's attempt only; the worker goes on.
    """

    def __init__(
        self, fn: Callable[..., Any], batch: bool = False, timeout: float | None = None
    ) -> None:
        self._fn = fn
        self._kind = kind_of(fn)
        self._batch = batch
        self._timeout = timeout

    async def pipeline_batch(
        self,
        run: str,
        stage: str,
        ids: list[int],
        paths: list[tuple[int, ...]] | None,
        attempts: list[int],
        values: list[Any],
    ) -> Answer:
        """Run the stage on ``values`` (see the module docs for the answer)."""
        batch = _Batch(run, stage, ids, paths, attempts)
        if self._batch:
            return await _call_batch(self._fn, self._kind, batch, values, self._timeout)
        answer, _ = await _call_each(self._fn, self._kind, batch, values, self._timeout, False)
        return answer


class ActorStage:
    """Mixed into an Actor class stage: ``process`` per item, and a crash when it raises.

    The items before the one that raised keep their outputs, those after it
    are not attempted; the answer goes back first, then the actor crashes
    (its supervisor starts a fresh instance, ``on_restart`` included).
    """

    _pipeline_batch_size: bool = False
    _pipeline_timeout: float | None = None

    async def pipeline_batch(
        self,
        run: str,
        stage: str,
        ids: list[int],
        paths: list[tuple[int, ...]] | None,
        attempts: list[int],
        values: list[Any],
    ) -> Answer:
        """Run ``process`` on ``values`` (see the module docs for the answer)."""
        process = getattr(self, "process")  # noqa: B009
        batch = _Batch(run, stage, ids, paths, attempts)
        if self._pipeline_batch_size:
            answer = await _call_batch(
                process, kind_of(process), batch, values, self._pipeline_timeout
            )
            stopped = answer[1][0][1] if answer[0] == MIXED else None
        else:
            answer, stopped = await _call_each(
                process, kind_of(process), batch, values, self._pipeline_timeout, True
            )
        if stopped is not None:
            ref: actors.ActorRef = getattr(self, "ref")  # noqa: B009
            await ref.tell("pipeline_crash", stopped)
        return answer

    def pipeline_crash(self, error: BaseException) -> None:
        """Crash, as the ``process`` call that raised ``error`` would have."""
        raise error


def actor_worker(cls: type[actors.Actor], batch: bool, timeout: float | None) -> type[actors.Actor]:
    """``cls`` with :class:`ActorStage` mixed in: the worker class of an Actor stage."""
    # A name of its own: found under the original's, it would be the original.
    attributes = {
        "__module__": __name__,
        "__qualname__": f"{cls.__qualname__}Worker",
        "__doc__": cls.__doc__,
        "_pipeline_batch_size": batch,
        "_pipeline_timeout": timeout,
    }
    worker: type[actors.Actor] = type(f"{cls.__name__}Worker", (ActorStage, cls), attributes)
    return worker
