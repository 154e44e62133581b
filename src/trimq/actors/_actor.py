"""The Actor base class: a plain Python class whose public methods are its handlers."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, ClassVar

import trio

from ._ref import current_runtime

if TYPE_CHECKING:
    from ._exit import ExitReason
    from ._node import Node
    from ._ref import ActorRef
    from ._timer import Timer

__all__ = ["LIFECYCLE_HOOKS", "Actor", "handler_names", "plain_handler_names"]

LIFECYCLE_HOOKS = frozenset(
    {
        "on_start",
        "on_restart",
        "on_stop",
        "on_down",
        "on_child_exit",
        "send_after",
        "send_every",
        "monitor",
        "demonitor",
        "link",
        "unlink",
        "on_event",
        "publish",
        "subscribe",
        "unsubscribe",
    }
)


class Actor:
    """Subclass this to write an actor.

    Every public method (sync or ``async``) is a message handler, called with
    the arguments of ``ref.ask("method", ...)`` or ``ref.tell("method", ...)``.
    The actor handles one message at a time, in the order they arrived, in
    its own trio task: its state needs no locks.

    Lifecycle hooks (sync or ``async``; override what you need):

    * :meth:`on_start` runs before the first message. If it raises,
      ``node.spawn`` raises that exception and the actor never runs.
    * :meth:`on_restart` runs instead, on the fresh instance a supervisor
      builds after the previous one ended; by default it calls ``on_start``.
    * :meth:`on_stop` runs after the last message, when the actor is stopped
      gracefully, when its node closes, or after a handler crashed it.

    If a handler raises, the asker gets the exception and the actor **crashes**
    (its state may be half-updated, so it does not handle another message),
    as an Erlang/OTP process does; messages still in its mailbox fail with
    :class:`ActorStoppedError`. Catch exceptions inside a handler to keep going.

    Its own methods below (:meth:`monitor`, :meth:`link`, :meth:`subscribe`,
    :meth:`send_after`, ...) are for its handlers and hooks: like refs, they
    act through the node of the calling task, which there is its own.

    Attributes:
        ref: This actor's reference (set before ``on_start`` runs).
        node: The node hosting it.

    .. versionadded:: 0.1
    """

    ref: ActorRef
    node: Node
    _handler_names: ClassVar[frozenset[str] | None] = None
    _plain_handler_names: ClassVar[frozenset[str] | None] = None

    def on_start(self) -> Any:
        """Called before the first message (override; may be ``async``)."""

    def on_restart(self, reason: ExitReason) -> Any:
        """Called, instead of :meth:`on_start`, on the new instance a supervisor
        made after the previous one ended (override; may be ``async``).

        The default calls ``on_start()``, so an actor that sets itself up in
        ``on_start`` needs nothing more. Override it to recover differently,
        e.g. reload state a crash lost. If it raises, the restart failed, and
        the supervisor counts it like a crash.

        Args:
            reason: How the previous incarnation ended (``reason.error`` holds
                the exception that crashed it).
        """
        return self.on_start()

    def on_stop(self) -> Any:
        """Called after the last message (override; may be ``async``)."""

    def on_down(self, ref: ActorRef, reason: ExitReason) -> Any:
        """A monitored actor ended (override; may be ``async``).

        Delivered through the mailbox like a message, after the messages
        already queued. If it raises, the actor crashes like any handler.

        Args:
            ref: The actor that ended.
            reason: Why: stopped, crashed (with the error), killed, or not running.
        """

    def monitor(self, ref: ActorRef) -> None:
        """Be told through :meth:`on_down` when ``ref`` ends, once.

        If it is not running, the notice (``"not running"``) comes at once.
        """
        current_runtime().monitor(self.ref, ref)

    def demonitor(self, ref: ActorRef) -> None:
        """Stop watching ``ref``."""
        current_runtime().demonitor(self.ref, ref)

    def on_event(self, topic: str, event: Any) -> Any:
        """An event arrived on a topic it subscribed to (override; may be ``async``)."""

    async def subscribe(self, prefix: str) -> None:
        """Receive, through :meth:`on_event`, events published on this node whose
        topic starts with ``prefix`` (until this incarnation ends)."""
        await current_runtime().subscribe(self.ref, prefix)

    async def unsubscribe(self, prefix: str) -> None:
        """Stop receiving events for ``prefix``."""
        await trio.lowlevel.checkpoint()
        current_runtime().unsubscribe(self.ref, prefix)

    async def publish(self, topic: str, event: Any) -> None:
        """Publish ``event`` on ``topic`` to the subscribers on this node."""
        await self.node.publish(topic, event)

    def link(self, ref: ActorRef) -> None:
        """Tie this actor's fate to ``ref``'s, both ways, as Erlang links do.

        If either crashes or is killed, the other crashes too, with
        :class:`LinkedActorError` (its ``on_stop`` runs, and its supervisor
        decides). A graceful stop just removes the link. Links last for the
        current incarnations.

        Raises:
            ActorNotFoundError: ``ref`` is not running.
        """
        current_runtime().link(self.ref, ref)

    def unlink(self, ref: ActorRef) -> None:
        """Remove a link made with :meth:`link`."""
        current_runtime().unlink(self.ref, ref)

    def send_after(self, delay: float, method: str, /, *args: Any, **kwargs: Any) -> Timer:
        """Tell this actor ``method(*args, **kwargs)`` in ``delay`` seconds.

        The message goes through the mailbox like any other. Timers end with
        the actor; :meth:`Timer.cancel` ends one sooner.

        Raises:
            AttributeError: No such handler.
            ValueError: ``delay`` is negative.
        """
        return current_runtime().start_timer(self.ref, delay, None, method, args, kwargs)

    def send_every(self, interval: float, method: str, /, *args: Any, **kwargs: Any) -> Timer:
        """Tell this actor ``method(*args, **kwargs)`` every ``interval`` seconds.

        Ticks keep a fixed rate; one delayed by a full mailbox is not made up.

        Raises:
            AttributeError: No such handler.
            ValueError: ``interval`` is not positive.
        """
        return current_runtime().start_timer(self.ref, interval, interval, method, args, kwargs)


def handler_names(cls: type[Actor]) -> frozenset[str]:
    """The message handlers of an actor class: its public callables, hooks excluded."""
    names = cls.__dict__.get("_handler_names")
    if names is None:
        names = frozenset(
            name
            for name in dir(cls)
            if not name.startswith("_")
            and name not in LIFECYCLE_HOOKS
            and name not in ("ref", "node")
            and callable(getattr(cls, name, None))
        )
        cls._handler_names = names
    return names


def plain_handler_names(cls: type[Actor]) -> frozenset[str]:
    """The handlers of ``cls`` that are plain ``def`` functions: they cannot
    wait, so nothing can interrupt them while they run."""
    names = cls.__dict__.get("_plain_handler_names")
    if names is None:
        names = frozenset(
            name
            for name in handler_names(cls)
            if inspect.isfunction(function := inspect.getattr_static(cls, name))
            and not inspect.iscoroutinefunction(function)
            and not inspect.isasyncgenfunction(function)
        )
        cls._plain_handler_names = names
    return names
