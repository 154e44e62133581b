"""A node's local event bus: an inproc PUB/SUB pair, and which actors subscribe to what.

Events pass as the Python objects themselves, in publishing order, through
each subscriber's mailbox (``on_event``). The PUB is ``xpub_nodrop``: a
subscriber whose mailbox is full makes publishing wait rather than miss an
event, except for reports (:meth:`Bus.report`), which never wait. What
crosses to other nodes is the cluster's business (``_events``); the runtime
tells it when a prefix gains its first local subscriber or loses its last.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import trio

from ..zmtp import SocketType
from ._actor import Actor
from ._mail import Call

if TYPE_CHECKING:
    from ..patterns import Context, Socket
    from ._cell import Cell

__all__ = ["Bus", "Tap"]

log = logging.getLogger("trimq.actors")


class Bus:
    """One node's local event bus."""

    def __init__(
        self, name: str, context: Context, nursery: trio.Nursery, cells: Mapping[str, Cell]
    ) -> None:
        self._name = name  # the node's
        self._context = context
        self._nursery = nursery
        self._cells = cells  # the node's, read only
        self._pub: Socket | None = None
        self._sub: Socket | None = None
        self._subscribers: dict[str, set[str]] = {}  # prefix -> actor names
        self._topics: dict[str, set[str]] = {}  # actor name -> its prefixes

    def subscribers(self) -> dict[str, set[str]]:
        """Each prefix subscribed to here, and by which actors (a copy)."""
        return {prefix: set(names) for prefix, names in self._subscribers.items()}

    @property
    def prefixes(self) -> list[str]:
        """The prefixes some local actor subscribes to."""
        return list(self._subscribers)

    async def publish(self, topic: str, event: object) -> None:
        """Deliver ``event`` to the local subscribers of a prefix of ``topic``,
        waiting while one of their mailboxes is full."""
        pub = await self._bus()
        await pub.send_object(event, topic=topic.encode())

    async def report(self, topic: str, event: object) -> None:
        """Like :meth:`publish`, but never waiting: dropped if the bus is full."""
        pub = await self._bus()
        try:
            pub.send_object_nowait(event, topic=topic.encode())
        except trio.WouldBlock:
            log.debug("node %r: the event bus is full: dropped a report on %r", self._name, topic)

    async def subscribe(self, name: str, prefix: str) -> bool:
        """Deliver ``prefix`` events to actor ``name``; True if it is the
        prefix's first subscriber here."""
        await self._bus()
        sub = self._sub
        assert sub is not None
        names = self._subscribers.setdefault(prefix, set())
        first = not names
        if first:
            sub.subscribe(prefix.encode())
        names.add(name)
        self._topics.setdefault(name, set()).add(prefix)
        return first

    def unsubscribe(self, name: str, prefix: str) -> bool:
        """Stop delivering ``prefix`` events to ``name``; True if it was the
        prefix's last subscriber here."""
        topics = self._topics.get(name)
        if topics is not None:
            topics.discard(prefix)
            if not topics:
                del self._topics[name]
        names = self._subscribers.get(prefix)
        if names is None:
            return False
        names.discard(name)
        if names:
            return False
        del self._subscribers[prefix]
        if self._sub is not None and not self._sub.closed:
            self._sub.unsubscribe(prefix.encode())
        return True

    def drop(self, name: str) -> list[str]:
        """End all of ``name``'s subscriptions (they belong to an incarnation);
        returns the prefixes left without subscribers here."""
        return [p for p in list(self._topics.get(name, ())) if self.unsubscribe(name, p)]

    async def _bus(self) -> Socket:
        if self._pub is None:
            endpoint = f"inproc://trimq.actors/{self._name}/events"
            # xpub_nodrop: publishers wait for a slow subscriber instead of losing events.
            pub = self._context.socket(SocketType.PUB, xpub_nodrop=True, linger=0)
            sub = self._context.socket(SocketType.SUB, linger=0)
            await pub.bind(endpoint)
            await sub.connect(endpoint)
            self._pub, self._sub = pub, sub
            self._nursery.start_soon(self._dispatch, sub)
        return self._pub

    async def _dispatch(self, sub: Socket) -> None:
        # One event at a time, to each subscriber once, however many of its
        # prefixes match.
        while True:
            try:
                raw_topic, event = await sub.recv_multipart()
            except trio.ClosedResourceError:
                return
            topic = raw_topic.decode()
            targets: set[str] = set()
            for prefix, names in self._subscribers.items():
                if topic.startswith(prefix):
                    targets |= names
            for name in sorted(targets):
                cell = self._cells.get(name)
                if cell is not None:
                    await cell.deliver(Call("on_event", (topic, event), {}, None))


class Tap(Actor):
    """Hands the events it subscribed to to a task (see :meth:`Node.events`)."""

    def __init__(self, prefix: str, out: trio.MemorySendChannel[tuple[str, Any]]) -> None:
        self._prefix = prefix
        self._out = out

    async def on_start(self) -> None:
        """Subscribe to the prefix."""
        await self.subscribe(self._prefix)

    async def on_event(self, topic: str, event: Any) -> None:
        """Hand the event to the task (it waits while the task's buffer is full)."""
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self._out.send((topic, event))
