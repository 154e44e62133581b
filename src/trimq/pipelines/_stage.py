"""One step of a pipeline: :class:`Stage`, a function or an Actor class run by a pool."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Hashable
from typing import Any, Literal

import attrs

from .. import actors
from ..actors import NodeRef

__all__ = ["Kind", "Stage", "kind_of"]

#: How a stage's callable gives its outputs: one return value (``sync``,
#: ``async``) or what it yields (``gen``, ``agen``).
Kind = Literal["sync", "async", "gen", "agen"]


def kind_of(fn: Callable[..., Any]) -> Kind:
    """What calling ``fn`` gives: a value, an awaitable, or a (async) generator."""
    if inspect.isasyncgenfunction(fn):
        return "agen"
    if inspect.isgeneratorfunction(fn):
        return "gen"
    if inspect.iscoroutinefunction(fn):
        return "async"
    return "sync"


def _positive_or_none(name: str) -> Callable[[Any, Any, Any], None]:
    def check(_: Any, __: Any, value: Any) -> None:
        if value is not None and value <= 0:
            raise ValueError(f"Stage {name} must be positive (or None), got {value!r}")

    return check


def _check_workers(_: Any, __: Any, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"Stage workers must be an int of at least 1, got {value!r}")


def _check_attempts(_: Any, __: Any, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"Stage max_attempts must be an int of at least 1, got {value!r}")


def _check_batch(_: Any, __: Any, value: int | None) -> None:
    if value is not None and (not isinstance(value, int) or value < 1):
        raise ValueError(f"Stage batch must be an int of at least 1 (or None), got {value!r}")


@attrs.frozen
class Stage:
    """One step of a :class:`~trimq.pipelines.Pipeline`: a supervised pool of workers.

    Args:
        fn: A plain function (sync or ``async``), a generator function (sync
            or async: 0..n outputs per input, kept together and in order),
            or an :class:`~trimq.actors.Actor` subclass whose ``process``
            method is called per item (its instance lives across items; a
            ``process`` that raises crashes it, and its supervisor starts a
            fresh one).
        workers: How many workers the pool has.
        on: Where they run, as ``Node.spawn(on=...)``: ``None`` (the node
            that runs the pipeline), a :class:`~trimq.actors.NodeRef`, a node
            name, a tag or ``"*"``; spread over every matching node, and
            placed again when a node is lost.
        name: The stage's name (statistics, failures, logs); default the
            function's or class's name.
        max_attempts: Attempts per item before it is a
            :class:`~trimq.pipelines.Failure`.
        timeout: Seconds an attempt may take (per item), or ``None``.
        batch: Give the function lists of up to this many items; it returns
            a list of as many outputs, in order.
        key: A function of an item giving its key: items with equal keys go
            through this stage one at a time, in source order, also across
            retries, crashes and lost nodes (a failing item holds up only
            the later items of its own key until it is settled); items of
            different keys still spread over the pool.
        rate: At most this many items per second through the stage, across
            the whole pool wherever its workers run (a token bucket);
            changeable while a run goes on (``Run.set_rate``).
        stall_after: Seconds without a completion, while items are in
            flight, after which the stage counts as stalled (a WARNING and
            ``StageStatistics.stalls``); default the pipeline's
            ``stall_after``.

    Raises:
        ValueError: ``workers`` or ``max_attempts`` below 1, a ``timeout``,
            ``batch``, ``rate`` or ``stall_after`` that is not positive, or
            an Actor class without a ``process`` method.
        TypeError: ``fn`` or ``key`` is not callable.

    .. versionadded:: 0.1
    """

    fn: Callable[..., Any] | type[actors.Actor]
    workers: int = attrs.field(default=1, kw_only=True, validator=_check_workers)
    on: NodeRef | str | None = attrs.field(default=None, kw_only=True)
    name: str = attrs.field(default="", kw_only=True)
    max_attempts: int = attrs.field(default=3, kw_only=True, validator=_check_attempts)
    timeout: float | None = attrs.field(
        default=None, kw_only=True, validator=_positive_or_none("timeout")
    )
    batch: int | None = attrs.field(default=None, kw_only=True, validator=_check_batch)
    key: Callable[[Any], Hashable] | None = attrs.field(default=None, kw_only=True)
    rate: float | None = attrs.field(
        default=None, kw_only=True, validator=_positive_or_none("rate")
    )
    stall_after: float | None = attrs.field(
        default=None, kw_only=True, validator=_positive_or_none("stall_after")
    )

    def __attrs_post_init__(self) -> None:
        fn = self.fn
        if not callable(fn):
            raise TypeError(f"a Stage runs a function or an Actor class, not {fn!r}")
        if self.key is not None and not callable(self.key):
            raise TypeError(f"Stage key must be a function of the item, not {self.key!r}")
        if self.is_actor and not callable(getattr(fn, "process", None)):
            raise ValueError(f"Actor class {fn.__name__} has no process(item) method")
        if not self.name:
            object.__setattr__(self, "name", getattr(fn, "__name__", type(fn).__name__))

    @property
    def is_actor(self) -> bool:
        """Whether the stage is an Actor class (else a function)."""
        return isinstance(self.fn, type) and issubclass(self.fn, actors.Actor)

    @property
    def kind(self) -> Kind:
        """How the stage's function (or ``process``) gives its outputs."""
        fn = getattr(self.fn, "process") if self.is_actor else self.fn  # noqa: B009
        return kind_of(fn)

    @property
    def placement(self) -> str | None:
        """``on`` as ``ChildSpec(on=...)`` takes it."""
        on = self.on
        return on.name if isinstance(on, NodeRef) else on
