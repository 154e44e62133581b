"""Flow control of calls between nodes: credit, and the calls that wait for mailbox room.

The task that reads a link (the ROUTER's, or a DEALER's) must never wait
for an actor's mailbox: heartbeats, replies and every other actor's calls
come on that same socket. So a CALL for an actor whose mailbox is full
goes to a queue of its own, per link and actor (calls keep their order
per sender and receiver), and a task per queue feeds the mailbox as it
drains, waiting there instead of the reader.

What bounds those queues is credit. Each node announces in its HELLO or
WELCOME a window (:attr:`PeerLimits.window`): how many of the other's
calls it takes before they are delivered. The sender counts the calls it
sent (tells and asks alike); the receiver counts those its mailboxes took
and grants them back (CREDIT, at every quarter of the window, when its
queue for that link empties, and in every PING, so a lost grant heals).
A sender whose calls in flight fill the window waits, as for a full
socket queue, up to the node timeout: the backpressure reaches the node
that fills the mailboxes, and nothing else. Heartbeats, replies and other
peers flow meanwhile.

Counting starts again with each HELLO or WELCOME a node sends, which
carries a fresh *epoch*: the receiver counts, and grants, per epoch, so
calls lost with a broken connection and grants of an earlier epoch never
skew it. A node that ignores its window (four times over) has its calls
refused: an ask gets the error, a tell is logged and dropped.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import trio

from . import _wire as wire
from ._errors import ActorStoppedError

if TYPE_CHECKING:
    from ._link import Link
    from ._links import Links
    from ._local import LocalNode, PendingReply

__all__ = ["Backlog", "PeerLimits", "QueuedCall"]

log = logging.getLogger("trimq.actors")


@attrs.frozen
class PeerLimits:
    """How much state one peer node may make this node hold (``open_node(limits=...)``).

    A peer that reaches a limit is made to wait (calls) or gets an error for
    what goes beyond it (asks, monitors): whatever it sends, it never costs
    more than these.

    Attributes:
        window: Calls (tells and asks) from one peer that this node takes
            before their mailboxes do: the peer's credit. A peer whose calls
            fill it waits; one that sends four times as many has the rest
            refused.
        asks: Asks from one peer being answered here at once; more are
            answered at once with an error.
        monitors: Actors here that one peer's actors may monitor at once;
            more are answered at once with a DOWN ("not running").

    Raises:
        ValueError: A limit is below 1, or the window above 2**31.

    .. versionadded:: 0.1
    """

    window: int = 1000
    asks: int = 10_000
    monitors: int = 10_000

    def __attrs_post_init__(self) -> None:
        for name in ("window", "asks", "monitors"):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"PeerLimits.{name} must be at least 1, got {value}")
        if self.window > wire.MAX_WINDOW:
            raise ValueError(f"PeerLimits.window is at most {wire.MAX_WINDOW}")


@attrs.frozen
class QueuedCall:
    """A call from another node on its way to its actor's mailbox."""

    actor: str
    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    rid: int | None  # None: a tell
    epoch: int = 0  # the sender's, when it came


#: What to do with a call once its mailbox took it: answer an ask (``rid``) when done.
Accepted = Callable[["Link", "int | None", "PendingReply | None"], None]
#: What to do with a call that failed (unknown actor, stopped, refused).
Failed = Callable[["Link", "int | None", Exception], None]


class Backlog:
    """The receiving end: calls each link's node sent, fed to mailboxes in
    order, and the credit granted back as they are taken."""

    def __init__(
        self,
        links: Links,
        local: LocalNode,
        nursery: trio.Nursery,
        limits: PeerLimits,
        accepted: Accepted,
        failed: Failed,
    ) -> None:
        self._links = links
        self._local = local
        self._nursery = nursery
        self._window = limits.window
        self._quarter = max(1, limits.window // 4)
        self._accepted = accepted
        self._failed = failed
        self._queues: dict[tuple[Link, str], collections.deque[QueuedCall]] = {}
        self._sizes: collections.Counter[Link] = collections.Counter()
        self._overrunning: set[Link] = set()  # said so in the log already

    def size(self, link: Link) -> int:
        """How many of ``link``'s calls wait for mailbox room here."""
        return self._sizes[link]

    def offer(
        self,
        link: Link,
        actor: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        rid: int | None,
    ) -> None:
        """Hand a call (an ask if ``rid``) to its actor now if its mailbox has
        room and nothing of ``link``'s waits before it; else queue it. Never waits."""
        key = (link, actor)
        queue = self._queues.get(key)
        if queue is None:
            try:
                reply = self._local.offer(actor, method, args, kwargs, ask=rid is not None)
            except trio.WouldBlock:
                pass
            except Exception as exc:
                self._taken(link, link.peer_epoch, drained=False)
                self._failed(link, rid, exc)
                return
            else:
                self._taken(link, link.peer_epoch, drained=False)
                self._accepted(link, rid, reply)
                return
        if self._sizes[link] >= 4 * self._window:
            self._overrun(link, rid)
            return
        if queue is None:
            queue = self._queues[key] = collections.deque()
            self._nursery.start_soon(self._feed, link, key, queue)
        queue.append(QueuedCall(actor, method, args, kwargs, rid, link.peer_epoch))
        self._sizes[link] += 1

    def refuse(self, link: Link, rid: int | None, error: Exception) -> None:
        """A call that cannot go to its actor (``error`` says why) is done with."""
        self._taken(link, link.peer_epoch, drained=False)
        self._failed(link, rid, error)

    def forget(self, link: Link) -> None:
        """``link`` is forgotten: its queued calls go with it."""
        for key in [k for k in self._queues if k[0] is link]:
            self._queues[key].clear()
        self._sizes.pop(link, None)
        self._overrunning.discard(link)

    def _overrun(self, link: Link, rid: int | None) -> None:
        # A node far beyond its window: an ask gets the error; tells are
        # logged once per link, so that it cannot flood the log either.
        self._taken(link, link.peer_epoch, drained=False)
        error = _overrun(self._local.name, link)
        if rid is not None:
            self._failed(link, rid, error)
        elif link not in self._overrunning:
            self._overrunning.add(link)
            log.warning(
                "node %r: %s; dropping its tells until it is back within it",
                self._local.name,
                error,
            )

    def _taken(self, link: Link, epoch: int, *, drained: bool) -> None:
        # A call left our hands (taken by its mailbox, or failed): credit it
        # back at each quarter of the window, and once the queue is empty
        # (its sender may be waiting for just these).
        if epoch != link.peer_epoch:
            return  # counted in an epoch its sender has left
        link.delivered += 1
        ungranted = link.delivered - link.granted_back
        if ungranted >= self._quarter or (drained and ungranted):
            self._links.send(link, link.grant(wire.Credit), flush=True)

    async def _feed(
        self, link: Link, key: tuple[Link, str], queue: collections.deque[QueuedCall]
    ) -> None:
        # The one task that waits for this actor's mailbox on this link's behalf.
        self._local.adopt_task()
        try:
            while queue:
                call = queue[0]
                try:
                    reply = await self._local.accept(
                        call.actor, call.method, call.args, call.kwargs, ask=call.rid is not None
                    )
                except Exception as exc:
                    self._dequeue(link, queue, call)
                    self._failed(link, call.rid, exc)
                else:
                    self._dequeue(link, queue, call)
                    self._accepted(link, call.rid, reply)
        except Exception:  # a bug: lose these calls, not the node (see Cluster.receive)
            log.exception(
                "node %r: %d calls from node %r to actor %r were lost",
                self._local.name,
                len(queue),
                link.name,
                key[1],
            )
            left = self._sizes[link] - len(queue)
            queue.clear()
            if left > 0:
                self._sizes[link] = left
            else:
                self._sizes.pop(link, None)
        finally:
            if self._queues.get(key) is queue:
                del self._queues[key]

    def _dequeue(self, link: Link, queue: collections.deque[QueuedCall], call: QueuedCall) -> None:
        if not queue or queue[0] is not call:
            return  # forgotten meanwhile
        queue.popleft()
        left = self._sizes[link] = self._sizes[link] - 1
        if left <= 0:
            del self._sizes[link]
            self._overrunning.discard(link)
        self._taken(link, call.epoch, drained=left <= 0)


async def wait_for_credit(link: Link, timeout: float) -> None:
    """The sending end: return once ``link``'s node takes another call from us.

    Raises:
        ActorStoppedError: It granted none for ``timeout`` seconds (its
            mailboxes stay full, or it is lost).
    """
    with trio.move_on_after(timeout):
        while not link.has_credit:
            await link.credit_changed.wait()
        return
    raise ActorStoppedError(
        f"node {link.name!r} took none of this node's calls for {timeout} s: its actors' "
        f"mailboxes are full (it holds {link.window} of our calls, its window)"
    )


def _overrun(name: str, link: Link) -> ActorStoppedError:
    return ActorStoppedError(
        f"node {name!r} refused a call from node {link.name!r}: that node sent far "
        "more calls than the window it was given (a node not following the protocol)"
    )
