"""A Context's ZAP client: its sockets ask the handler bound at inproc://zeromq.zap.01.

One DEALER per Context carries every request, tagged with a request id, so
handshakes waiting on the authenticator never block each other. Without a
handler, libzmq's rules apply: a PLAIN server refuses everyone, CURVE and NULL
accept (unless ``zap_enforce_domain`` is set).
"""

from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING

import trio

from .._options import SocketOptions
from ..zmtp import ZAP_ENDPOINT, AuthRequest, SocketType, ZapError, ZapReply, ZapRequest

if TYPE_CHECKING:
    from ._context import Context
    from ._socket import Socket

__all__ = ["ZapClient"]

log = logging.getLogger("trimq.auth")

_ZAP_NAME = ZAP_ENDPOINT.removeprefix("inproc://")


class _Waiting:
    __slots__ = ("done", "reply")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.reply: ZapReply | None = None


class ZapClient:
    """Sends ZAP requests for a Context's sockets and matches the replies."""

    def __init__(self, context: Context) -> None:
        self._ctx = context
        self._sock: Socket | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[bytes, _Waiting] = {}

    async def authenticate(
        self, options: SocketOptions, request: AuthRequest, address: str
    ) -> ZapReply:
        """The verdict on one peer: the handler's, or libzmq's default without one."""
        request_id = str(next(self._ids)).encode()
        if not self._ctx._inproc.is_bound(_ZAP_NAME):
            return _without_handler(options, request, request_id)
        zap = ZapRequest(
            request_id=request_id,
            domain=options.zap_domain,
            address=address.encode(),
            routing_id=options.routing_id,
            mechanism=request.mechanism,
            credentials=request.credentials,
        )
        waiting = self._waiting[request_id] = _Waiting()
        try:
            sock = await self._socket()
            await sock.send_multipart([b"", *zap.encode()])
            await waiting.done.wait()
        finally:
            del self._waiting[request_id]
        assert waiting.reply is not None
        return waiting.reply

    async def _socket(self) -> Socket:
        if self._sock is None or self._sock.closed:
            sock = self._sock = self._ctx.socket(SocketType.DEALER, sndhwm=0, rcvhwm=0, linger=0)
            self._ctx._spawn_system_task(lambda: self._read_replies(sock))
            await sock.connect(ZAP_ENDPOINT)
        return self._sock

    async def _read_replies(self, sock: Socket) -> None:
        while True:
            try:
                frames = await sock.recv_multipart()
            except trio.ClosedResourceError:
                return
            request_id = frames[2] if len(frames) > 2 else b""
            waiting = self._waiting.get(request_id)
            if waiting is None:
                log.warning("ZAP handler replied to unknown request %r; ignored", request_id)
                continue
            try:
                if frames[0] != b"":
                    raise ZapError("ZAP reply lacks the empty delimiter frame")
                waiting.reply = ZapReply.decode(frames[1:])
            except ZapError as exc:
                log.warning("ZAP handler sent a malformed reply (%s): refusing the peer", exc)
                waiting.reply = ZapReply(request_id, b"500", f"malformed ZAP reply: {exc}".encode())
            waiting.done.set()


def _without_handler(options: SocketOptions, request: AuthRequest, request_id: bytes) -> ZapReply:
    if request.mechanism == b"PLAIN":
        text = (
            b"no ZAP handler: a PLAIN server refuses every client until an authenticator "
            b"(trimq.auth.Authenticator) runs in its Context"
        )
        return ZapReply(request_id, b"500", text)
    if options.zap_enforce_domain:
        return ZapReply(request_id, b"500", b"no ZAP handler and zap_enforce_domain=True")
    return ZapReply(request_id, b"200", b"OK (no ZAP handler)")
