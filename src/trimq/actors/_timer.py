"""Timers: messages an actor scheduled for itself (``send_after``, ``send_every``).

A leaf: the :class:`Timer` handle and the loop that ticks it, given a way to
deliver each tick. The actor's cell starts the loop in its node's nursery and
cancels it when the incarnation ends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

__all__ = ["Timer", "tick"]


class Timer:
    """A message an actor scheduled for itself (see :meth:`Actor.send_after`).

    .. versionadded:: 0.1
    """

    __slots__ = ("_scope",)

    def __init__(self, scope: trio.CancelScope) -> None:
        self._scope = scope  # around the loop that ticks it (see tick)

    def cancel(self) -> None:
        """Send no more messages (a message already sent stays in the mailbox)."""
        self._scope.cancel()

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._scope.cancel_called


async def tick(
    scope: trio.CancelScope,
    deliver: Callable[[], Awaitable[bool]],
    delay: float,
    interval: float | None,
) -> None:
    """Call ``deliver`` after ``delay`` s, then every ``interval`` s if given,
    until ``scope`` (a :class:`Timer`'s) is cancelled or ``deliver`` returns
    False (the actor ended for good)."""
    with scope:
        due = trio.current_time() + delay
        while True:
            await trio.sleep_until(due)
            if not await deliver():
                return
            if interval is None:
                return
            # Fixed rate, but a tick delayed by a full mailbox is not made up.
            due = max(due + interval, trio.current_time())
