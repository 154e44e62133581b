"""ROUTER: addresses peers by routing id (the first frame of every message)."""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING, ClassVar

from .._errors import HostUnreachableError
from .._peer import Peer
from ..transport import Pipe
from ..zmtp import SocketType
from ._socket import DROPPED, QUEUED, Frames, Socket

if TYPE_CHECKING:
    from .._options import SocketOptions
    from ._context import Context

__all__ = ["Router"]

log = logging.getLogger("trimq")


class Router(Socket):
    """ROUTER: ``recv`` prepends the sender's routing id; ``send`` routes by the first frame.

    Peers without an ``Identity`` get ``b"\\x00"`` + a 4-byte counter, as in
    libzmq. Messages to unknown or full peers are dropped, unless
    ``router_mandatory=True``: then an unknown peer raises
    :class:`~trimq.HostUnreachableError` and a full one makes ``send`` wait.
    """

    socket_type: ClassVar[SocketType] = SocketType.ROUTER

    def __init__(self, context: Context, options: SocketOptions) -> None:
        super().__init__(context, options)
        self._by_id: dict[bytes, Pipe] = {}
        self._next_id = random.getrandbits(32)

    def _generate_id(self) -> bytes:
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF
        return b"\x00" + self._next_id.to_bytes(4, "big")

    def _xattach(self, pipe: Pipe) -> bool:
        ident = pipe.identity
        if not ident:
            ident = self._generate_id()
            while ident in self._by_id:
                ident = self._generate_id()
        elif ident in self._by_id:
            if not self._options.router_handover:
                log.warning("ROUTER refused a second peer with routing id %r", ident)
                return False
            old = self._by_id.pop(ident)
            old.identity = self._generate_id()
            self.detach_pipe(old)
        pipe.identity = ident
        self._by_id[ident] = pipe
        return True

    def _xdetach(self, pipe: Pipe) -> None:
        if self._by_id.get(pipe.identity) is pipe:
            del self._by_id[pipe.identity]

    def _xrecv(self) -> Frames | None:
        msg = self._fq_recv()
        if msg is None:
            return None
        assert self._fq_pipe is not None
        return [self._fq_pipe.identity, *msg]

    def peer(self, routing_id: bytes) -> Peer:
        """The peer that ``routing_id`` (the first frame of its messages) routes to.

        Raises:
            HostUnreachableError: No connected peer has that routing id.
        """
        pipe = self._by_id.get(routing_id)
        if pipe is None or pipe.peer is None:
            raise HostUnreachableError(f"no peer with routing id {routing_id!r} is connected")
        return pipe.peer

    def _xsend(self, msg: Frames) -> int:
        if len(msg) < 2:
            raise ValueError("ROUTER messages need a routing-id frame and at least one more")
        pipe = self._by_id.get(msg[0])
        if pipe is None:
            if self._options.router_mandatory:
                raise HostUnreachableError(f"no peer with routing id {msg[0]!r} is connected")
            return DROPPED
        q = pipe.outq
        if q.hwm and len(q.items) >= q.hwm:
            if self._options.router_mandatory:
                q.writer_waiting = True
                return 0
            return DROPPED
        q.put(msg[1:])
        return QUEUED
