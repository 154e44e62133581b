"""ActorRef, the address of an actor, and the runtime that refs, actors and
supervisors reach through the calling task.

A leaf: the network half builds refs from what peers send, so this module
names nothing of the local half. Every node sets itself as the current
runtime in each task it runs (its actors', its network serve tasks'), and
``open_node`` does so in the task that opens it; a ref resolves through the
runtime of the task that uses it, as trio's own functions resolve through
the run they are called in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, Protocol

import attrs

if TYPE_CHECKING:
    from ._timer import Timer

__all__ = [
    "ActorRef",
    "Runtime",
    "current_runtime",
    "reset_current_runtime",
    "set_current_runtime",
]


class Runtime(Protocol):
    """What :class:`ActorRef`, ``Actor`` and ``Supervisor`` ask of the node of
    the calling task (``_runtime.NodeRuntime`` is the one implementation)."""

    @property
    def node(self) -> object:
        """The public ``Node`` this runtime works for (see ``current_node``)."""
        ...

    # ActorRef
    async def tell(
        self, ref: ActorRef, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Deliver a message without waiting for the result (see :meth:`ActorRef.tell`)."""

    async def ask(
        self,
        ref: ActorRef,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
    ) -> Any:
        """Deliver a message and return the result (see :meth:`ActorRef.ask`)."""

    async def stop(self, ref: ActorRef) -> None:
        """Stop an actor after its queued messages (see :meth:`ActorRef.stop`)."""

    async def kill(self, ref: ActorRef) -> None:
        """Stop an actor at once (see :meth:`ActorRef.kill`)."""

    # Actor
    def monitor(self, watcher: ActorRef, target: ActorRef) -> None:
        """Tell ``watcher`` (``on_down``) when ``target``'s incarnation ends."""

    def demonitor(self, watcher: ActorRef, target: ActorRef) -> None:
        """Undo :meth:`monitor`."""

    def link(self, a: ActorRef, b: ActorRef) -> None:
        """Tie two local actors' current incarnations together."""

    def unlink(self, a: ActorRef, b: ActorRef) -> None:
        """Undo :meth:`link`."""

    async def subscribe(self, ref: ActorRef, prefix: str) -> None:
        """Deliver events on topics starting with ``prefix`` to ``ref``'s ``on_event``."""

    def unsubscribe(self, ref: ActorRef, prefix: str) -> None:
        """Undo :meth:`subscribe`."""

    def start_timer(
        self,
        ref: ActorRef,
        delay: float,
        interval: float | None,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Timer:
        """Tell ``ref`` ``method`` after ``delay`` s (then every ``interval`` s)."""
        ...

    # Supervisor
    async def suspend(self, ref: ActorRef) -> None:
        """End ``ref``'s current incarnation for a restart (its supervisor's call)."""

    async def restart(self, ref: ActorRef) -> None:
        """Start the next incarnation of a suspended or ended actor."""

    async def terminate(self, ref: ActorRef) -> None:
        """End an actor for good (its supervisor's call)."""

    async def report(self, topic: str, event: object) -> None:
        """Publish a supervisor's report, never waiting for subscribers."""


_current: ContextVar[Runtime] = ContextVar("trimq_actors_runtime")


def current_runtime() -> Runtime:
    """The runtime of the calling task's node.

    Raises:
        RuntimeError: Not inside a running node.
    """
    try:
        return _current.get()
    except LookupError:
        raise _no_node() from None


def set_current_runtime(runtime: Runtime) -> Token[Runtime]:
    """Make ``runtime`` the calling task's (a node's own tasks call it as they
    start); returns the token that :func:`reset_current_runtime` takes."""
    return _current.set(runtime)


def reset_current_runtime(token: Token[Runtime]) -> None:
    """Undo :func:`set_current_runtime` (``open_node``, as it exits)."""
    _current.reset(token)


def _no_node() -> RuntimeError:
    return RuntimeError(
        "no trimq actor node here: use refs inside 'async with trimq.actors.open_node()'"
    )


@attrs.frozen
class ActorRef:
    """The address of an actor: which node hosts it, and its name there.

    A plain value: comparable, hashable, picklable, usable as a dict key and
    inside messages. It names the actor, not one incarnation of it, so it stays
    valid when a supervisor restarts the actor. Its methods reach the actor
    through the node of the calling task.

    Attributes:
        node: The hosting node's name.
        name: The actor's name, unique on its node.

    .. versionadded:: 0.1
    """

    node: str
    name: str

    async def tell(self, method: str, /, *args: Any, **kwargs: Any) -> None:
        """Send a message and return once it is in the actor's mailbox.

        Waits while the mailbox is full (backpressure). The handler's result
        and any exception it raises are not reported back.

        Raises:
            AttributeError: The actor has no such handler.
            ActorNotFoundError: No such actor.
            ActorStoppedError: The actor stopped before taking the message.
        """
        # The context variable itself, not current_runtime(): every message
        # passes here, and a helper call is a measurable part of a local tell.
        try:
            runtime = _current.get()
        except LookupError:
            raise _no_node() from None
        await runtime.tell(self, method, args, kwargs)

    async def ask(
        self, method: str, /, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        """Send a message and return the handler's result.

        Args:
            method: The handler's name.
            *args: Its positional arguments.
            timeout: Seconds to wait for the result; on expiry the handler is
                cancelled (or never runs, if it had not started) and
                :class:`TimeoutError` is raised. ``None`` waits as long as it takes.
            **kwargs: Its keyword arguments.

        Raises:
            TimeoutError: ``timeout`` expired.
            AttributeError: The actor has no such handler.
            ActorNotFoundError: No such actor.
            ActorStoppedError: The actor stopped before answering.
            Exception: Whatever the handler raised, re-raised with its traceback.
        """
        try:  # as in tell: no helper call on the way
            runtime = _current.get()
        except LookupError:
            raise _no_node() from None
        return await runtime.ask(self, method, args, kwargs, timeout)

    async def stop(self) -> None:
        """Stop the actor after the messages already in its mailbox; runs ``on_stop``."""
        await current_runtime().stop(self)

    async def kill(self) -> None:
        """Stop the actor now: its current handler is cancelled, ``on_stop`` does not
        run, and messages left in its mailbox fail with ActorStoppedError."""
        await current_runtime().kill(self)

    @property
    def proxy(self) -> _Proxy:
        """Attribute-style asks: ``await ref.proxy.add(2)`` is ``await ref.ask("add", 2)``."""
        return _Proxy(self)


class _Proxy:
    __slots__ = ("_ref",)

    def __init__(self, ref: ActorRef) -> None:
        self._ref = ref

    def __getattr__(self, method: str) -> Callable[..., Awaitable[Any]]:
        if method.startswith("_"):
            raise AttributeError(method)
        ref = self._ref

        def call(*args: Any, **kwargs: Any) -> Awaitable[Any]:
            return ref.ask(method, *args, **kwargs)

        return call

    def __repr__(self) -> str:
        return f"<proxy of {self._ref!r}>"
