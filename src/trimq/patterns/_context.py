"""The Context: owns sockets, their background tasks, and the inproc namespace."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

import trio

from .._errors import InvalidEndpointError
from .._options import SocketOptions, check_names
from ..transport import InprocRegistry, parse_endpoint
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

_MAX_OPTION_SETS = 64
_SECRETS = frozenset({"curve_secretkey", "plain_password"})


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
        # Validated option sets, shared by the sockets that ask for the same
        # ones (options are immutable): validation is most of a socket's cost.
        self._option_sets: dict[tuple[tuple[str, Any], ...], SocketOptions] = {}
        self._pipe_numbers = itertools.count(1)

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
        sock = cls(self, self._options_for(options))
        self._sockets.add(sock)
        return sock

    def pipe(self, endpoint: str | None = None, **options: Any) -> tuple[Socket, Socket]:
        """Two PAIR sockets connected over ``inproc://``, ready at once (CZMQ's
        ``zsys_create_pipe``): the usual way to give a task a private channel.

        Both get ``options``. The first is bound at ``endpoint`` (default: a
        fresh ``inproc://trimq.pipe/<n>``), the second connected to it; no
        checkpoint, since inproc needs no I/O. Each direction holds the
        sender's ``sndhwm`` plus the receiver's ``rcvhwm`` messages, as libzmq
        sizes inproc pipes.

        Example::

            inbox, outbox = ctx.pipe(linger=0)
            await outbox.send(b"job")
            assert await inbox.recv() == b"job"

        Raises:
            OSError: ``endpoint`` is already bound in this Context.
            trimq.InvalidEndpointError: ``endpoint`` is not an ``inproc://`` endpoint.
            TypeError, ValueError: as :meth:`socket`.

        .. versionadded:: 0.1
        """
        if endpoint is None:
            endpoint = f"inproc://trimq.pipe/{next(self._pipe_numbers)}"
        ep = parse_endpoint(endpoint, for_bind=True)
        if ep.transport != "inproc":
            raise InvalidEndpointError(
                f"Context.pipe() needs an inproc:// endpoint, got {endpoint}"
            )
        bound = self.socket(SocketType.PAIR, **options)
        connected = self.socket(SocketType.PAIR, **options)
        try:
            bound._bind_inproc(endpoint, ep.path)
        except BaseException:
            bound.close_nowait()
            connected.close_nowait()
            raise
        connected._connect_inproc(endpoint, ep.path)
        return bound, connected

    def _options_for(self, options: dict[str, Any]) -> SocketOptions:
        key = tuple(options.items())
        try:
            return self._option_sets[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable value (a bytearray key): no sharing
            check_names(options)
            return SocketOptions(**options)
        check_names(options)
        made = SocketOptions(**options)
        if len(self._option_sets) >= _MAX_OPTION_SETS:
            self._option_sets.clear()
        if not _SECRETS.intersection(options):  # no secrets outlive their sockets
            self._option_sets[key] = made
        return made

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
                sock.close_nowait()
            self._closed = True
            self._nursery.cancel_scope.cancel()
            # The block's own exception is not the nursery's: keep it out, so it
            # propagates as raised instead of wrapped in an ExceptionGroup.
            await self._nursery_cm.__aexit__(None, None, None)
            self._nursery = None
        return False
