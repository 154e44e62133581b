"""Who reads a link's DEALER: its serve task, or an asker waiting for its reply.

A node's serve task reads each DEALER it connected and handles what comes.
An asker waiting for a reply on that link would be woken by the serve task a
scheduling batch after the reply arrived, a tenth of a round trip on
loopback; so while it waits it may read the socket itself (the reply then
wakes it directly) and the serve task stands aside. The asker handles only
what the serve task would handle at once (replies, pings). Anything else,
and everything after it, goes back to the serve task in :attr:`ReadTurns.handoff`,
so messages are still handled in the order they arrived.
"""

from __future__ import annotations

from collections import deque

import trio

from .._peer import Message
from ..patterns import Socket

__all__ = ["ReadTurns"]


class ReadTurns:
    """The turns to read one DEALER (see the module docstring)."""

    __slots__ = ("_aside", "_parked", "_scope", "asker", "blocked", "dealer", "handoff")

    def __init__(self, dealer: Socket) -> None:
        self.dealer = dealer
        self.asker: object | None = None  # whoever reads it now, if not the serve task
        #: The serve task got a message as the asker took over: the asker must
        #: hand over what it reads, since that came later.
        self.blocked = False
        #: Messages the asker read and left to the serve task, oldest first.
        self.handoff: deque[Message] = deque()
        self._scope: trio.CancelScope | None = None  # around the serve task's recv
        self._aside = False  # the serve task stands aside, until it runs again
        self._parked: trio.lowlevel.Task | None = None

    def taken(self) -> bool:
        """Whether an asker reads the socket now."""
        return self.asker is not None

    async def next_for_server(self) -> Message:
        """The next message for the serve task, in the order they arrived."""
        while True:
            if self.handoff:
                return self.handoff.popleft()
            if self.taken():
                await self._park()
                continue
            with trio.CancelScope() as scope:
                self._scope = scope
                message = await self.dealer.recv_message()
            self._scope = None
            if scope.cancelled_caught:
                continue  # an asker took over
            if self.taken():
                self.blocked = True  # it took over as this came in
            return message

    async def _park(self) -> None:
        self._aside = True
        self._parked = trio.lowlevel.current_task()

        def abort(_: object) -> trio.lowlevel.Abort:
            self._parked = None
            return trio.lowlevel.Abort.SUCCEEDED

        try:
            await trio.lowlevel.wait_task_rescheduled(abort)
        finally:
            self._aside = False

    def take(self, asker: object) -> bool:
        """Let ``asker`` read the socket, if the serve task can stand aside now.

        False if another asker reads, or the serve task is busy with a message
        (or has some to hand on): then wait for the serve task to deliver.
        """
        if self.taken() or self.handoff:
            return False
        if self._scope is not None:
            self._scope.cancel()  # it waits in recv: it stands aside when it runs
        elif not self._aside:
            return False
        self.asker = asker
        return True

    def give_back(self) -> None:
        """The asker stops reading: the serve task reads again."""
        self.asker = None
        self.blocked = False
        task = self._parked
        if task is not None:
            self._parked = None
            trio.lowlevel.reschedule(task)
