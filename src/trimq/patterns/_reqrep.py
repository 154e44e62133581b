"""REQ and REP: the lock-step request/reply pair, with libzmq's envelopes."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, ClassVar

from .._errors import SocketStateError
from ..transport import Pipe
from ..zmtp import SocketType
from ._socket import DROPPED, QUEUED, Frames, Socket

if TYPE_CHECKING:
    from .._options import SocketOptions
    from ._context import Context

__all__ = ["Rep", "Req"]


class Req(Socket):
    """REQ: send a request to the next peer, then receive its reply; strictly alternating.

    Sending twice raises :class:`~trimq.SocketStateError` (libzmq's EFSM) unless
    ``req_relaxed=True``, which abandons the outstanding request. Replies from
    any other peer, or without the empty delimiter, are dropped.
    """

    socket_type: ClassVar[SocketType] = SocketType.REQ
    flush_on_send = True

    def __init__(self, context: Context, options: SocketOptions) -> None:
        super().__init__(context, options)
        self._reply_pipe: Pipe | None = None
        self._awaiting = False
        self._request_id = random.getrandbits(32)

    def _xsend(self, msg: Frames) -> int:
        if self._awaiting and not self._options.req_relaxed:
            raise SocketStateError(
                "REQ socket is waiting for a reply: recv() it before sending another "
                "request (or create the socket with req_relaxed=True)"
            )
        pipe = self._lb_pipe()
        if pipe is None:
            return 0
        if self._reply_pipe is not None:
            self._discard_input(self._reply_pipe)
        if self._options.req_correlate:
            self._request_id = (self._request_id + 1) & 0xFFFFFFFF
            envelope = [self._request_id.to_bytes(4, "big"), b""]
        else:
            envelope = [b""]
        pipe.outq.put(envelope + msg)
        self._reply_pipe = pipe
        self._awaiting = True
        return QUEUED

    def _xrecv(self) -> Frames | None:
        if not self._awaiting:
            raise SocketStateError("REQ socket has no request outstanding: send() one first")
        pipe = self._reply_pipe
        assert pipe is not None
        q = pipe.inq
        while q.items:
            msg = q.get()
            body = self._strip_envelope(msg)
            if body is None:
                self._dropped += 1
                continue
            self._awaiting = False
            return body
        return None

    def _source_pipe(self) -> Pipe | None:
        return self._reply_pipe

    def _strip_envelope(self, msg: Frames) -> Frames | None:
        if self._options.req_correlate:
            rid = self._request_id.to_bytes(4, "big")
            if len(msg) >= 2 and msg[0] == rid and msg[1] == b"":
                return msg[2:]
            return None
        if len(msg) >= 2 and msg[0] == b"":
            return msg[1:]
        return None

    def pipe_readable(self, pipe: Pipe) -> None:
        if pipe is self._reply_pipe and self._awaiting:
            self._recv_waiters.wake()
        else:
            # Only the peer we asked may answer: anything else is stale or stray.
            self._discard_input(pipe)

    def _discard_input(self, pipe: Pipe) -> None:
        q = pipe.inq
        self._dropped += len(q.items)
        q.clear()
        q.notify_space()


class Rep(Socket):
    """REP: receive a request (fair-queued), then send exactly one reply to its sender.

    The routing envelope (every frame up to the empty delimiter) is kept and
    put back on the reply, so REP works behind DEALER/ROUTER proxies.
    """

    socket_type: ClassVar[SocketType] = SocketType.REP
    flush_on_send = True

    def __init__(self, context: Context, options: SocketOptions) -> None:
        super().__init__(context, options)
        self._reply_to: tuple[Pipe, Frames] | None = None

    def _xrecv(self) -> Frames | None:
        if self._reply_to is not None:
            raise SocketStateError(
                "REP socket owes a reply: send() it before receiving the next request"
            )
        while (msg := self._fq_recv()) is not None:
            pipe = self._fq_pipe
            assert pipe is not None
            try:
                i = msg.index(b"")
            except ValueError:
                self._dropped += 1  # no delimiter: not a request libzmq would accept
                continue
            body = msg[i + 1 :]
            if not body:
                self._dropped += 1
                continue
            self._reply_to = (pipe, msg[: i + 1])
            return body
        return None

    def _xsend(self, msg: Frames) -> int:
        if self._reply_to is None:
            raise SocketStateError("REP socket has no request to answer: recv() one first")
        pipe, envelope = self._reply_to
        self._reply_to = None
        if pipe.alive and not pipe.outq.full():
            pipe.outq.put(envelope + msg)
            return QUEUED
        return DROPPED  # the requester is gone or not reading, as in libzmq
