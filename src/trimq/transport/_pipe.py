"""Bounded message queues between a socket and its peers.

A :class:`MsgQueue` carries complete messages (``list[bytes]``) in one
direction. A :class:`Pipe` is one socket's view of one peer: messages in from
that peer (``inq``) and out to it (``outq``). On inproc the two sockets' pipes
share the queues crosswise, so a message moves between sockets as the same
Python object with no encoding at all.

Wake-ups are callbacks rather than awaited channel hand-offs because a trio
scheduling round trip per message would cost more than everything else on the
hot path put together; a queue only calls back on the empty→non-empty and
full→not-full edges, which are rare when traffic flows.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

import trio

if TYPE_CHECKING:
    from .._peer import Peer
    from ..zmtp import Frames
    from ._owner import PipeOwner

__all__ = ["MsgQueue", "Pipe", "Waiters", "inproc_pipe_pair", "noop"]


#: What a lazy queue holds while empty: a tuple, so a write that bypasses
#: :meth:`MsgQueue.writable` fails loudly instead of going nowhere.
NO_ITEMS = cast("deque[Frames]", ())


def noop() -> None:
    """Do nothing (the default callback)."""
    return


class QueueReader(Protocol):
    """Who reads a :class:`MsgQueue`: told when it goes from empty to non-empty."""

    def queue_readable(self) -> None:
        """The queue has a message (it had none)."""


class QueueWriter(Protocol):
    """Who writes a :class:`MsgQueue`: told when a full queue has room again."""

    def queue_writable(self) -> None:
        """The queue has room (``writer_waiting`` was set)."""


class _Nobody:
    def queue_readable(self) -> None:
        return

    def queue_writable(self) -> None:
        return


#: The reader and writer of a queue nobody listens to.
NOBODY = _Nobody()


class MsgQueue:
    """A deque of messages with a high-water mark, and a reader and a writer told
    about its edges. They are objects rather than callbacks because a bound
    method is one more object per queue for the garbage collector to walk, and
    a node has two inproc queues per actor.

    ``hwm == 0`` means unbounded. ``conflate`` keeps only the newest message.

    A ``lazy`` queue makes its deque on the first write and gives it up when a
    reader drains it (see :meth:`release`): an empty deque costs 760 bytes, and
    a node keeps two inproc queues per actor, mostly empty. Only queues whose
    ``items`` nobody keeps a reference to may be lazy: inproc ones (an engine's
    writer task holds its tcp queue's deque).
    """

    __slots__ = ("hwm", "items", "lazy", "reader", "writer", "writer_waiting")

    def __init__(self, hwm: int, *, conflate: bool = False, lazy: bool = False) -> None:
        self.lazy = lazy and not conflate
        self.items: deque[Frames] = (
            deque(maxlen=1) if conflate else NO_ITEMS if self.lazy else deque()
        )
        self.hwm = 0 if conflate else hwm
        #: Told when the queue goes from empty to non-empty.
        self.reader: QueueReader = NOBODY
        #: Told when space frees up and ``writer_waiting`` was set.
        self.writer: QueueWriter = NOBODY
        self.writer_waiting = False

    def set_conflate(self) -> None:
        """From now on keep only the newest message."""
        self.items = deque(self.items, maxlen=1)
        self.hwm = 0
        self.lazy = False

    def writable(self) -> deque[Frames]:
        """``items``, made first if the queue is lazy and empty (for writers that append)."""
        items = self.items
        if items is NO_ITEMS:
            items = self.items = deque()
        return items

    def release(self) -> None:
        """A reader emptied the queue: a lazy one gives its deque up."""
        if self.lazy:
            self.items = NO_ITEMS

    def clear(self) -> None:
        """Drop every queued message."""
        if self.items:
            self.items.clear()
            self.release()

    def full(self) -> bool:
        """True if a writer must wait (or drop) before adding another message."""
        return bool(self.hwm) and len(self.items) >= self.hwm

    def put(self, msg: Frames) -> None:
        """Append without checking the HWM (callers check :meth:`full` first)."""
        items = self.items
        if items is NO_ITEMS:
            items = self.items = deque()
        items.append(msg)
        if len(items) == 1:
            self.reader.queue_readable()

    def get(self) -> Frames:
        """Pop the oldest message; the queue must not be empty."""
        msg = self.items.popleft()
        if self.writer_waiting and len(self.items) < self.hwm:
            self.writer_waiting = False
            self.writer.queue_writable()
        return msg

    def notify_space(self) -> None:
        """Tell a waiting writer there is room (after a bulk removal)."""
        if self.writer_waiting and not self.full():
            self.writer_waiting = False
            self.writer.queue_writable()


class Pipe:
    """One socket's link to one peer.

    Attributes:
        inq: messages from the peer, read by the socket.
        outq: messages to the peer, written by the socket.
        identity: the peer's routing id (used by ROUTER).
        endpoint: the endpoint string this peer came through.
        peer_address: the remote address, for logs and monitor events.
        peer: who is at the other end, once known.
    """

    __slots__ = (
        "__weakref__",
        "alive",
        "busy",
        "endpoint",
        "identity",
        "in_ready",
        "inproc",
        "inq",
        "on_terminate",
        "other",
        "outq",
        "owner",
        "peer",
        "peer_address",
        "state",
        "wait_input",
    )

    def __init__(self, inq: MsgQueue, outq: MsgQueue, endpoint: str) -> None:
        self.inq = inq
        self.outq = outq
        self.endpoint = endpoint
        self.identity = b""
        self.peer_address = ""
        #: Who is at the other end (set once a handshake identified it).
        self.peer: Peer | None = None
        self.alive = True
        self.in_ready = False
        #: True while an engine is writing a batch taken from ``outq`` (for linger).
        self.busy = False
        #: True for inproc pipes, whose queued output is already with the peer.
        self.inproc = False
        #: Per-pipe routing state owned by the socket type (e.g. PUB's topics).
        self.state: Any = None
        #: Set by whoever drives the far end (an engine or the inproc peer socket).
        self.on_terminate: Callable[[], None] = noop
        #: On inproc, the peer socket's half of the pair (its end goes with ours).
        self.other: Pipe | None = None
        #: Set by an engine that lets a task blocked in ``recv`` wait for the
        #: connection itself (see ``Engine.wait_input``); None otherwise.
        self.wait_input: Callable[[Waiters], Awaitable[None]] | None = None
        #: The socket it is attached to, once attached.
        self.owner: PipeOwner | None = None

    def queue_readable(self) -> None:
        """``inq`` has input: tell the owning socket (the pipe is its inq's reader)."""
        assert self.owner is not None
        self.owner.pipe_readable(self)

    def terminate(self) -> None:
        """Our socket is done with this pipe: end whatever drives the far end
        (an engine's connection, or the inproc peer socket's half)."""
        terminate, self.on_terminate = self.on_terminate, noop
        other, self.other = self.other, None
        terminate()
        if other is not None and other.owner is not None:
            other.owner.detach_pipe(other)

    def __repr__(self) -> str:
        return f"<Pipe {self.endpoint} peer={self.peer_address or self.identity!r}>"


def inproc_pipe_pair(
    a_to_b_hwm: int, b_to_a_hwm: int, endpoint: str, *, conflate: bool = False
) -> tuple[Pipe, Pipe]:
    """Two pipes sharing their queues crosswise: A's ``outq`` is B's ``inq``."""
    ab = MsgQueue(a_to_b_hwm, conflate=conflate, lazy=True)
    ba = MsgQueue(b_to_a_hwm, conflate=conflate, lazy=True)
    a, b = Pipe(ba, ab, endpoint), Pipe(ab, ba, endpoint)
    a.inproc = b.inproc = True
    return a, b


def _abort_wait(
    tasks: list[trio.lowlevel.Task], task: trio.lowlevel.Task, _: Any
) -> trio.lowlevel.Abort:
    tasks.remove(task)  # still parked, so still listed: Waiters.wake() empties the list
    return trio.lowlevel.Abort.SUCCEEDED


class Waiters:
    """Tasks parked until a condition may have changed.

    Like trio's ParkingLot, but built on ``wait_task_rescheduled`` directly:
    nothing is allocated until a task waits, and an idle socket's waiting task
    holds one list rather than a lot, its dict and a frame (actors make
    sockets by the hundred thousand).

    A task that waits for something else at the same time (a socket becoming
    readable) registers a callback instead, which the next :meth:`wake` calls.
    """

    __slots__ = ("_tasks", "_wakers")

    def __init__(self) -> None:
        self._tasks: list[trio.lowlevel.Task] | None = None
        self._wakers: list[Callable[[], None]] | None = None

    def __bool__(self) -> bool:
        return bool(self._tasks) or bool(self._wakers)

    async def wait(self) -> None:
        """Park until :meth:`wake` (or cancellation)."""
        task = trio.lowlevel.current_task()
        tasks = self._tasks
        if tasks is None:
            tasks = self._tasks = []
        tasks.append(task)
        # A partial rather than a closure: two objects instead of four, kept
        # for as long as the task waits (an idle actor waits for good).
        await trio.lowlevel.wait_task_rescheduled(functools.partial(_abort_wait, tasks, task))

    def add_waker(self, waker: Callable[[], None]) -> None:
        """Call ``waker`` at the next :meth:`wake`."""
        if self._wakers is None:
            self._wakers = []
        self._wakers.append(waker)

    def remove_waker(self, waker: Callable[[], None]) -> None:
        """Forget ``waker`` (its wait ended some other way)."""
        if self._wakers and waker in self._wakers:
            self._wakers.remove(waker)

    def wake(self) -> None:
        """Wake every parked task, and call every waker."""
        tasks = self._tasks
        if tasks:
            for task in tasks:
                trio.lowlevel.reschedule(task)
            tasks.clear()
        if self._wakers:
            wakers, self._wakers = self._wakers, []
            for waker in wakers:
                waker()
