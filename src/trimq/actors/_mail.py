"""What travels in a mailbox: calls, the graceful-stop marker, and where an ask's answer goes.

Within a node these pass as the Python objects themselves, never pickled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

__all__ = ["STOP", "Call", "Reply", "Resume"]

#: The graceful-stop marker, queued behind earlier messages.
STOP = object()


class Reply:
    """Where a handler's result goes, for one ask (a ``PendingReply`` for
    asks from other nodes)."""

    __slots__ = ("abandoned", "done", "error", "on_done", "scope", "value")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self.abandoned = False
        self.scope: trio.CancelScope | None = None  # the running handler's
        #: Called when it completes (an ask from another node sends its reply).
        self.on_done: Callable[[], None] | None = None

    def succeed(self, value: Any) -> None:
        """The handler returned ``value``."""
        self.value = value
        self.done.set()
        if self.on_done is not None:
            self.on_done()

    def fail(self, error: BaseException) -> None:
        """The handler raised ``error`` (or the actor ended before answering)."""
        self.error = error
        self.done.set()
        if self.on_done is not None:
            self.on_done()

    def abandon(self) -> None:
        """The asker gave up (timeout, cancellation): the handler must not run,
        or stop running if it has started."""
        self.abandoned = True
        if self.scope is not None:
            self.scope.cancel()


class Call:
    """One message in a mailbox: a handler's name and arguments, and where
    its answer goes (``None`` for a tell)."""

    __slots__ = ("args", "kwargs", "method", "reply")

    def __init__(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], reply: Reply | None
    ) -> None:
        self.method = method
        self.args = args
        self.kwargs = kwargs
        self.reply = reply


class Resume(Call):
    """The rest of a call that ``Cell.handle_now`` began: what its handler
    returned to be waited for, which the actor's own task does."""

    __slots__ = ("awaitable",)

    def __init__(self, awaitable: Any, call: Call) -> None:
        super().__init__(call.method, call.args, call.kwargs, call.reply)
        self.awaitable = awaitable
