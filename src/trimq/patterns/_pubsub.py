"""PUB, XPUB, SUB and XSUB.

Subscriptions reach a publisher as ``\\x01topic`` / ``\\x00topic`` messages on
its pipes (the ZMTP 3.1 SUBSCRIBE/CANCEL commands are turned into that form by
the transport), so filtering happens at the publisher, per connection, over
tcp, ipc and inproc alike. As in libzmq, the publisher keeps a *set* of topics
per connection and the subscriber a reference count per topic.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, ClassVar

from ..transport import Pipe
from ..zmtp import SocketType
from ._socket import QUEUED, Frames, Socket
from ._topics import TopicSet

if TYPE_CHECKING:
    from .._options import SocketOptions
    from ._context import Context

__all__ = ["Pub", "Sub", "XPub", "XSub"]

SUBSCRIBE, CANCEL = 1, 0


def _as_topic(topic: bytes | str) -> bytes:
    return topic.encode() if isinstance(topic, str) else bytes(topic)


def _subscription(msg: Frames) -> tuple[int, bytes] | None:
    if len(msg) == 1 and msg[0] and msg[0][0] in (SUBSCRIBE, CANCEL):
        return msg[0][0], msg[0][1:]
    return None


class Pub(Socket):
    """PUB: every message goes to each subscriber whose subscriptions match its first frame.

    A subscriber that is not keeping up (its queue at ``sndhwm``) loses the
    message, unless ``xpub_nodrop=True``, which makes ``send`` wait instead.
    """

    socket_type: ClassVar[SocketType] = SocketType.PUB
    _can_recv = False

    def _xattach(self, pipe: Pipe) -> bool:
        pipe.state = TopicSet()
        return True

    def pipe_readable(self, pipe: Pipe) -> None:
        # Apply subscriptions as they arrive: nobody calls recv() on a PUB.
        q = pipe.inq
        items = q.items
        while items:
            self._upstream(pipe, items.popleft())
        q.release()
        q.notify_space()

    def _upstream(self, pipe: Pipe, msg: Frames) -> None:
        sub = _subscription(msg)
        if sub is None:
            return  # PUB ignores anything else a subscriber sends
        kind, topic = sub
        topics: TopicSet = pipe.state
        if kind == SUBSCRIBE:
            if topic not in topics:
                topics.add(topic)
                self._topic_added(topic, new_for_pipe=True)
            else:
                self._topic_added(topic, new_for_pipe=False)
        elif topics.remove(topic):
            self._topic_removed(topic, gone_for_pipe=True)
        else:
            self._topic_removed(topic, gone_for_pipe=False)

    def _topic_added(self, topic: bytes, *, new_for_pipe: bool) -> None:
        pass

    def _topic_removed(self, topic: bytes, *, gone_for_pipe: bool) -> None:
        pass

    def _xsend(self, msg: Frames) -> int:
        topic = msg[0]
        matching = [p for p in self.pipes if p.state.matches(topic)]
        if self._options.xpub_nodrop:
            full = [p for p in matching if p.outq.full()]
            if full:
                for pipe in full:
                    pipe.outq.writer_waiting = True
                return 0
        first = True
        for pipe in matching:
            q = pipe.outq
            if q.hwm and len(q.items) >= q.hwm:
                self._dropped += 1
                continue
            # One list per pipe: an inproc receiver may mutate what recv returned.
            q.put(msg if first else list(msg))
            first = False
        return QUEUED


class XPub(Pub):
    """XPUB: a PUB whose ``recv`` returns subscription changes as ``\\x01topic`` / ``\\x00topic``.

    By default only the first subscription and the last cancellation of each
    topic are reported; ``xpub_verbose`` reports every subscription and
    ``xpub_verboser`` every cancellation too. Other messages sent upstream
    (by an XSUB) are passed through unchanged.
    """

    socket_type: ClassVar[SocketType] = SocketType.XPUB
    _can_recv = True

    def __init__(self, context: Context, options: SocketOptions) -> None:
        super().__init__(context, options)
        self._refs = TopicSet()  # how many pipes hold each topic
        self._notes: deque[Frames] = deque()

    def _notify(self, msg: Frames) -> None:
        self._notes.append(msg)
        self._recv_waiters.wake()

    def _xattach(self, pipe: Pipe) -> bool:
        super()._xattach(pipe)
        welcome = self._options.xpub_welcome_msg
        if welcome is not None:
            pipe.outq.put([welcome])
        return True

    def _upstream(self, pipe: Pipe, msg: Frames) -> None:
        if _subscription(msg) is None:
            self._notify(msg)
        else:
            super()._upstream(pipe, msg)

    def _topic_added(self, topic: bytes, *, new_for_pipe: bool) -> None:
        first = new_for_pipe and self._refs.add(topic)
        if first or self._options.xpub_verbose or self._options.xpub_verboser:
            self._notify([b"\x01" + topic])

    def _topic_removed(self, topic: bytes, *, gone_for_pipe: bool) -> None:
        last = gone_for_pipe and self._refs.remove(topic)
        if last or (self._options.xpub_verboser and gone_for_pipe):
            self._notify([b"\x00" + topic])

    def _xdetach(self, pipe: Pipe) -> None:
        # A departing subscriber unsubscribes from everything it had.
        for topic in list(pipe.state.counts):
            self._topic_removed(topic, gone_for_pipe=True)
        pipe.state = TopicSet()

    def _xrecv(self) -> Frames | None:
        return self._notes.popleft() if self._notes else None

    def _source_pipe(self) -> Pipe | None:
        return None  # a notice may stand for several subscribers


class XSub(Socket):
    """XSUB: receives everything its publishers send; subscribe by sending ``\\x01topic``.

    Subscriptions sent through it are remembered and re-sent when a connection
    is re-established, as libzmq does.
    """

    socket_type: ClassVar[SocketType] = SocketType.XSUB

    def __init__(self, context: Context, options: SocketOptions) -> None:
        super().__init__(context, options)
        self._subs = TopicSet()

    def _xattach(self, pipe: Pipe) -> bool:
        for topic in self._subs:
            pipe.outq.put([b"\x01" + topic])
        return True

    def _xhiccup(self, pipe: Pipe) -> None:
        # Whatever was queued while disconnected is replaced by the full set.
        pipe.outq.clear()
        self._xattach(pipe)

    def _send_upstream(self, msg: Frames) -> None:
        # Subscriptions bypass the HWM: losing one would silently starve the subscriber.
        for i, pipe in enumerate(self.pipes):
            pipe.outq.put(msg if i == 0 else list(msg))

    def _xsend(self, msg: Frames) -> int:
        sub = _subscription(msg)
        if sub is not None:
            kind, topic = sub
            if kind == SUBSCRIBE:
                self._subs.add(topic)
            elif not self._subs.remove(topic) and topic in self._subs:
                return QUEUED  # still subscribed by someone else: nothing to send
            self._send_upstream(msg)
            return QUEUED
        for pipe in self.pipes:
            if not pipe.outq.full():
                pipe.outq.put(list(msg))
        return QUEUED

    def _xrecv(self) -> Frames | None:
        return self._fq_recv()


class Sub(XSub):
    """SUB: receives messages whose first frame starts with a subscribed topic.

    Subscriptions are counted: a topic subscribed twice needs two
    :meth:`unsubscribe` calls before the publisher is told to stop.
    """

    socket_type: ClassVar[SocketType] = SocketType.SUB
    _can_send = False

    def subscribe(self, topic: bytes | str) -> None:
        """Receive messages starting with ``topic`` (``b""`` subscribes to everything)."""
        self._check_open()
        t = _as_topic(topic)
        self._subs.add(t)
        self._send_upstream([b"\x01" + t])

    def unsubscribe(self, topic: bytes | str) -> None:
        """Undo one :meth:`subscribe`; the publisher is told when the count reaches zero."""
        self._check_open()
        t = _as_topic(topic)
        if self._subs.remove(t):
            self._send_upstream([b"\x00" + t])

    def _xsend(self, msg: Frames) -> int:
        return Socket._xsend(self, msg)

    def _xrecv(self) -> Frames | None:
        subs = self._subs
        while (msg := self._fq_recv()) is not None:
            if subs.matches(msg[0]):
                return msg
            self._dropped += 1
        return None
