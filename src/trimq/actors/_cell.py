"""One actor on its node: its mailbox and the state of its lifecycle.

A cell is one named actor. Its mailbox outlives incarnations: when a
supervisor restarts the actor, a fresh instance takes over the messages
still queued. The cell is the actor's state machine; its trio task, which
drives it from incarnation to incarnation, is in ``_task``. What a cell
needs of its node (supervisors, monitors, subscriptions, children) it asks
through :class:`CellHost`.

The lifecycle is one field, :attr:`Cell.phase`::

    starting --> idle <--> busy            the incarnation is live: on_start
       |          |         |              (or on_restart), then messages
       +----------+---------+--> stopping  timers, watchers and on_stop end it
                                   |
                                between    supervised: waits for its verdict,
                                   |       "restart" goes back to starting
                                 ended     for good: its mailbox is closed

Invariants:

* Timers may be started only while the incarnation is live (``LIVE``).
* ``generation`` counts incarnations (restart attempts included), so a
  waiter knows whether the incarnation it waited for is over.
* Every change of phase but idle <-> busy (the message loop's, which
  nobody waits for) wakes the waiters (:meth:`Cell.moved`): they check
  again whether what they wait for happened (start over, incarnation over,
  verdict given, ended). One event, made only when somebody waits.
* Two flags say how an incarnation is being ended from outside: ``halted``
  (its supervisor ends it: finish the current handler, do not tell the
  supervisor) and ``killed`` (cancelled at once, no ``on_stop``); ``fatal``
  is an error that ended it from another task (a linked actor's end, or a
  handler that crashed in ``handle_now``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

import trio

from ._actor import Actor, handler_names
from ._errors import ActorStoppedError
from ._exit import ExitReason
from ._mail import Call, Reply
from ._timer import Timer, tick

if TYPE_CHECKING:
    from ..patterns import Socket
    from ._ref import ActorRef

__all__ = ["LIVE", "NO_NAMES", "Cell", "CellHost", "Phase"]

log = logging.getLogger("trimq.actors")

Phase = Literal["starting", "idle", "busy", "stopping", "between", "ended"]
#: The phases of a live incarnation.
LIVE: frozenset[Phase] = frozenset({"starting", "idle", "busy"})

Decision = Literal["restart", "terminate"]
#: What spawn() learns of the first on_start: it waits ("waiting"), it ran
#: ("started"), or what it raised (or ActorStoppedError if it never ended).
Start = Literal["waiting", "started"] | BaseException | None

# Shared stand-ins for a cell's children and links until its first (most
# cells supervise and link nothing), replaced by a real list or set on the
# first add. Immutable, so a forgotten replacement fails loudly.
_NO_CHILDREN: list[str] = cast("list[str]", ())
NO_NAMES: set[str] = cast("set[str]", frozenset())


class CellHost(Protocol):
    """What a cell asks of its node (``_runtime.NodeRuntime``)."""

    @property
    def name(self) -> str:
        """The node's name."""
        ...

    @property
    def closing(self) -> bool:
        """Whether the node is closing (no restarts then, and on_stop is shielded)."""
        ...

    def adopt_task(self) -> None:
        """Make the node the current node of the calling task."""

    def cancelled(self) -> None:
        """The node's own cancellation reached an actor task: the node is closing."""

    def make_actor(
        self, cls: type[Actor], ref: ActorRef, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Actor:
        """A new instance for an incarnation, bound to its ref and node."""
        ...

    def start_soon(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        """Run ``fn(*args)`` in the node's nursery."""

    def tell_supervisor(self, cell: Cell, reason: ExitReason) -> None:
        """The cell's incarnation ended on its own: its supervisor decides."""

    def take_watchers(self, ref: ActorRef) -> set[ActorRef]:
        """The monitors of ``ref``'s incarnation, forgotten here."""
        ...

    def drop_topics(self, ref: ActorRef) -> None:
        """End ``ref``'s event subscriptions (they belong to an incarnation)."""

    async def end_children(self, cell: Cell) -> None:
        """End the actors the cell supervises, here and on other nodes, newest first."""

    def notify_down(self, ref: ActorRef, reason: ExitReason, watchers: set[ActorRef]) -> None:
        """Tell ``watchers`` that ``ref``'s incarnation ended."""

    def break_links(self, cell: Cell, reason: ExitReason) -> None:
        """End the incarnations linked to the cell's, if ``reason`` is not normal."""

    def forget(self, cell: Cell, *, tell_watchers: bool) -> None:
        """The cell ended for good: drop it from the node's tables (and tell
        watchers set between incarnations, if ``tell_watchers``)."""


class Cell:
    """One named actor on its node: its mailbox, its lifecycle, and its current incarnation."""

    __slots__ = (
        "_changed",
        "actor",
        "args",
        "children",
        "cls",
        "decision",
        "fatal",
        "generation",
        "halted",
        "handlers",
        "host",
        "inbox",
        "killed",
        "kwargs",
        "last_exit",
        "links",
        "outbox",
        "phase",
        "ref",
        "reply",
        "scope",
        "shutdown",
        "start",
        "stop_scope",
        "supervisor",
        "timers",
    )

    def __init__(
        self,
        host: CellHost,
        ref: ActorRef,
        cls: type[Actor],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        first: Actor,
        inbox: Socket,
        outbox: Socket,
        supervisor: ActorRef | None,
        shutdown: float,
    ) -> None:
        self.host = host
        self.ref = ref
        # What each restart makes a fresh instance from (fields, not a closure:
        # a closure is seven objects for the garbage collector to walk).
        self.cls = cls
        self.args = args
        self.kwargs = kwargs
        self.inbox = inbox  # the actor's end of the mailbox
        self.outbox = outbox  # the end every local sender shares
        self.supervisor = supervisor
        self.shutdown = shutdown  # seconds a supervisor's stop may take before a kill
        # Names of the actors it supervises here, in start order.
        self.children: list[str] = _NO_CHILDREN
        self.phase: Phase = "starting"
        self.generation = 1
        self._changed: trio.Event | None = None  # made when somebody waits
        self.decision: Decision | None = None  # its supervisor's verdict, until taken
        self.start: Start = None  # set by spawn(), which waits for the first on_start
        self.last_exit: ExitReason | None = None  # how the previous incarnation ended
        # Timer tasks run in the node's nursery; each incarnation cancels its own
        # (a nursery per actor would cost more than all its timers usually do).
        self.timers: list[Timer] | None = None
        self.reply: Reply | None = None  # the ask being handled now
        self.begin(first)

    def begin(self, actor: Actor) -> None:
        """Make ``actor`` the current incarnation, with fresh per-incarnation state."""
        self.actor = actor
        self.handlers = handler_names(type(actor))
        self.scope = trio.CancelScope()
        self.stop_scope: trio.CancelScope | None = None  # around on_stop, once it runs
        self.links = NO_NAMES  # actors whose abnormal end ends this incarnation
        self.halted = False
        self.killed = False
        self.fatal: Exception | None = None
        self.phase = "starting"

    def add_child(self, name: str) -> None:
        """Note an actor this one supervises here."""
        if self.children is _NO_CHILDREN:
            self.children = []
        self.children.append(name)

    # ------------------------------------------------------------------ waiting

    def moved(self) -> None:
        """A milestone: wake the waiters, which check again what they wait for."""
        event, self._changed = self._changed, None
        if event is not None:
            event.set()

    async def _until(self, ready: Callable[[], bool]) -> None:
        if ready():
            await trio.lowlevel.checkpoint()
            return
        while not ready():
            if self._changed is None:
                self._changed = trio.Event()
            await self._changed.wait()

    async def wait_started(self) -> None:
        """Until the first ``on_start`` is over (see :attr:`start`)."""
        await self._until(lambda: self.start != "waiting")

    async def wait_restarted(self, generation: int) -> None:
        """Until the incarnation after ``generation`` is past its ``on_restart``
        (or failed to be built), or the cell ended."""
        await self._until(
            lambda: (
                self.phase == "ended" or (self.generation > generation and self.phase != "starting")
            )
        )

    async def wait_over(self, generation: int) -> None:
        """Until incarnation ``generation`` is over."""
        await self._until(
            lambda: self.generation != generation or self.phase in ("between", "ended")
        )

    async def wait_verdict(self) -> Decision:
        """Until its supervisor's verdict is given; takes it."""
        await self._until(lambda: self.decision is not None)
        decision, self.decision = self.decision, None
        assert decision is not None
        return decision

    async def wait_ended(self) -> None:
        """Until the cell ended for good."""
        await self._until(lambda: self.phase == "ended")

    async def within_shutdown(self, wait: Callable[[], Awaitable[None]]) -> None:
        """``await wait()`` for the actor's shutdown time, then kill it and wait again."""
        with trio.move_on_after(self.shutdown):
            await wait()
            return
        log.warning("actor %r did not stop within %s s: killing it", self.ref.name, self.shutdown)
        self.kill_now()
        await wait()

    # ------------------------------------------------------------------ from outside

    def decide(self, decision: Decision) -> None:
        """Its supervisor's verdict on the incarnation that ended (or is ending)."""
        self.decision = decision
        self.moved()

    def halt(self) -> None:
        """Its supervisor ends the incarnation: after the current handler, or at once."""
        self.halted = True
        if self.phase != "busy":
            self.scope.cancel()  # nothing to finish

    def kill_now(self) -> None:
        """Cancel the current incarnation, its handler and ``on_stop`` included."""
        self.killed = True
        self.scope.cancel()
        if self.stop_scope is not None:
            self.stop_scope.cancel()

    def crash(self, error: Exception) -> None:
        """End the incarnation with ``error`` (a linked actor's end), unless it
        is ending already."""
        if self.fatal is None and not self.halted:
            self.fatal = error
            self.scope.cancel()

    async def post(self, message: object) -> None:
        """Queue a message, waiting for room (a tell's or an ask's).

        Raises:
            ActorStoppedError: The actor ended for good.
        """
        try:
            await self.outbox.send_object(message)
        except trio.ClosedResourceError:
            raise ActorStoppedError(f"actor {self.ref.name!r} has stopped") from None

    def post_nowait(self, message: object) -> None:
        """Queue a message if there is room now.

        Raises:
            trio.WouldBlock: The mailbox is full.
            ActorStoppedError: The actor ended for good.
        """
        try:
            self.outbox.send_object_nowait(message)
        except trio.ClosedResourceError:
            raise ActorStoppedError(f"actor {self.ref.name!r} has stopped") from None

    async def deliver(self, message: object) -> bool:
        """Queue a message, waiting for room; False if the actor ended for good."""
        try:
            await self.outbox.send_object(message)
        except trio.ClosedResourceError:
            return False
        return True

    def start_timer(
        self,
        delay: float,
        interval: float | None,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Timer:
        """Tell this actor ``method`` after ``delay`` s, then every ``interval`` s.

        Raises:
            ValueError: A negative delay, or an interval that is not positive.
            ActorStoppedError: The incarnation is not live.
        """
        if delay < 0 or (interval is not None and interval <= 0):
            raise ValueError(f"timer delay must be >= 0 and interval > 0, got {delay}, {interval}")
        if self.phase not in LIVE:
            raise ActorStoppedError(f"actor {self.ref.name!r} is not running")
        scope = trio.CancelScope()
        timer = Timer(scope)
        if self.timers is None:
            self.timers = []
        self.timers.append(timer)
        # A fresh message each time: a handler may keep the one it got.
        deliver = functools.partial(self._tell_self, method, args, kwargs)
        self.host.start_soon(tick, scope, deliver, delay, interval)
        return timer

    async def _tell_self(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        return await self.deliver(Call(method, args, kwargs, None))

    def cancel_timers(self) -> None:
        """End the incarnation's timers (a message already sent stays queued)."""
        if self.timers is not None:
            for timer in self.timers:
                timer.cancel()
            self.timers = None
