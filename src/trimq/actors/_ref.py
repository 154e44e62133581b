"""ActorRef: the address of an actor, as a plain value."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from ._node import Node

__all__ = ["ActorRef", "current_node"]

_current_node: ContextVar[Node] = ContextVar("trimq_actors_node")


def current_node() -> Node:
    """The node of the calling task (set inside ``open_node`` and every actor task).

    Raises:
        RuntimeError: Not inside a running node.
    """
    try:
        return _current_node.get()
    except LookupError:
        raise RuntimeError(
            "no trimq actor node here: use refs inside 'async with trimq.actors.open_node()'"
        ) from None


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
        await current_node().tell(self, method, args, kwargs)

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
        return await current_node().ask(self, method, args, kwargs, timeout)

    async def stop(self) -> None:
        """Stop the actor after the messages already in its mailbox; runs ``on_stop``."""
        await current_node().stop(self)

    async def kill(self) -> None:
        """Stop the actor now: its current handler is cancelled, ``on_stop`` does not
        run, and messages left in its mailbox fail with ActorStoppedError."""
        await current_node().kill(self)

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
