"""The Context: owns sockets, their background tasks, and the inproc namespace."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

import trio

from .._options import SocketOptions, check_names
from ..transport import InprocRegistry
from ..zmtp import SocketType
from ._pubsub import Pub, Sub, XPub, XSub
from ._reqrep import Rep, Req
from ._router import Router
from ._simple import Dealer, Pair, Pull, Push
from ._socket import Socket
from ._zap import ZapClient

__all__ = ["Context"]

log = logging.getLogger("trimq")

_CLASSES: dict[SocketType, type[Socket]] = {
    cls.socket_type: cls
    for cls in (Pair, Pub, Sub, Req, Rep, Dealer, Router, Pull, Push, XPub, XSub)
}


class Context:
    """Owns sockets and the tasks that serve their connections.

    Use it as ``async with trimq.Context() as ctx:``; leaving the block closes
    every socket still open (flushing each for up to its ``linger``, or not at
    all if the block raised) and stops the background tasks.
    ``inproc://`` names are scoped to one Context.
    """

    def __init__(self) -> None:
        self._nursery: trio.Nursery | None = None
        self._nursery_cm: Any = None
        self._sockets: set[Socket] = set()
        self._inproc = InprocRegistry()
        self._zap = ZapClient(self)
        self._closed = False

    def socket(self, socket_type: SocketType | int, **options: Any) -> Socket:
        """Create a socket of ``socket_type`` (e.g. ``trimq.PUSH``) with libzmq-named options.

        Raises:
            TypeError: an unknown option name.
            ValueError: an option value out of range or an unknown socket type.
            trio.ClosedResourceError: the context is closed or not entered.
        """
        if self._nursery is None or self._closed:
            raise trio.ClosedResourceError(
                "the Context is not running: create sockets inside 'async with trimq.Context()'"
            )
        try:
            cls = _CLASSES[SocketType(socket_type)]
        except ValueError:
            raise ValueError(f"unknown socket type {socket_type!r}") from None
        check_names(options)
        sock = cls(self, SocketOptions(**options))
        self._sockets.add(sock)
        return sock

    def _spawn_system_task(self, fn: Callable[[], Awaitable[None]]) -> None:
        if self._nursery is None:
            raise trio.ClosedResourceError("the Context is closed")
        self._nursery.start_soon(fn)

    def _forget(self, sock: Socket) -> None:
        self._sockets.discard(sock)

    async def aclose(self, linger: int | None = None) -> None:
        """Close every socket (each waits up to its linger, or ``linger`` ms if given)."""
        for sock in list(self._sockets):
            await sock.aclose(linger)

    async def __aenter__(self) -> Context:
        self._nursery_cm = trio.open_nursery()
        self._nursery = await self._nursery_cm.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        assert self._nursery is not None
        try:
            if exc_type is None:
                await self.aclose()
        finally:
            for sock in list(self._sockets):
                sock._close_now()
            self._closed = True
            self._nursery.cancel_scope.cancel()
            # The block's own exception is not the nursery's: keep it out, so it
            # propagates as raised instead of wrapped in an ExceptionGroup.
            await self._nursery_cm.__aexit__(None, None, None)
            self._nursery = None
        return False
