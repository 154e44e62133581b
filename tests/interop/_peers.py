"""One async interface over a trimq socket and a pyzmq (libzmq) socket.

The interop tests speak to both ends through :class:`Peer`, so a single test
body covers "trimq on this side, libzmq on that side" and the reverse.

pyzmq calls run in worker threads (``trio.to_thread.run_sync``) on blocking
sockets with ``rcvtimeo``/``sndtimeo`` and ``linger=0``, so every wait is
bounded even if trio's cancel scope cannot interrupt the thread. A pyzmq socket
is only ever used by one thread at a time (the test awaits each call).
"""

from __future__ import annotations

import abc
import itertools
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio
import zmq
import zmq.utils.monitor

import trimq

__all__ = [
    "SOCKET_TIMEOUT_MS",
    "Endpoints",
    "Peer",
    "PeerFactory",
    "PyzmqPeer",
    "TrimqPeer",
    "free_tcp_port",
]

SOCKET_TIMEOUT_MS = 5000
"""rcvtimeo/sndtimeo of pyzmq sockets: longer than any test's ``fail_after``."""

_ZMQ_EVENTS = (
    zmq.EVENT_CONNECTED
    | zmq.EVENT_ACCEPTED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_CLOSED
    | zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


class Peer(abc.ABC):
    """A socket of either implementation, driven from trio."""

    kind: str
    type_name: str

    @abc.abstractmethod
    async def bind(self, endpoint: str) -> str:
        """Bind and return the real endpoint."""

    @abc.abstractmethod
    async def connect(self, endpoint: str) -> None:
        """Connect (returns before the connection is up)."""

    @abc.abstractmethod
    async def send_multipart(self, frames: Sequence[bytes]) -> None:
        """Send one whole message."""

    @abc.abstractmethod
    async def send_within(self, frames: Sequence[bytes], seconds: float) -> bool:
        """Send if the socket takes the message within ``seconds``; False if it did not."""

    @abc.abstractmethod
    async def recv_multipart(self) -> list[bytes]:
        """Receive one whole message (bounded by the socket timeout)."""

    @abc.abstractmethod
    async def recv_within(self, seconds: float) -> list[bytes] | None:
        """A message if one arrives within ``seconds``, else None."""

    @abc.abstractmethod
    async def wait_event(self, event: str) -> None:
        """Wait for the next monitor event named ``event`` (e.g. "HANDSHAKE_SUCCEEDED")."""

    @abc.abstractmethod
    async def event_within(self, event: str, seconds: float) -> bool:
        """True if the monitor event ``event`` happens within ``seconds``."""

    @abc.abstractmethod
    def nudge(self) -> None:
        """Let an idle libzmq socket process its pending commands (no-op for trimq).

        libzmq attaches a new connection's pipe, and so sends a SUB's
        subscriptions, only when the application next calls into the socket.
        """

    @abc.abstractmethod
    def subscribe(self, topic: bytes) -> None:
        """SUB only: add a subscription."""

    @abc.abstractmethod
    def unsubscribe(self, topic: bytes) -> None:
        """SUB only: drop a subscription."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close at once (linger 0)."""

    @property
    @abc.abstractmethod
    def closed(self) -> bool:
        """True once closed."""

    async def wait_handshake(self) -> None:
        """Wait until a ZMTP handshake with a peer completed."""
        await self.wait_event("HANDSHAKE_SUCCEEDED")

    def __repr__(self) -> str:
        return f"<{self.kind} {self.type_name}>"


class TrimqPeer(Peer):
    """A trimq socket; its monitor records events from creation on."""

    kind = "trimq"

    def __init__(self, sock: trimq.Socket, type_name: str) -> None:
        self.sock = sock
        self.type_name = type_name
        self.monitor = sock.monitor()

    async def bind(self, endpoint: str) -> str:
        return await self.sock.bind(endpoint)

    async def connect(self, endpoint: str) -> None:
        await self.sock.connect(endpoint)

    async def send_multipart(self, frames: Sequence[bytes]) -> None:
        await self.sock.send_multipart(frames)

    async def send_within(self, frames: Sequence[bytes], seconds: float) -> bool:
        with trio.move_on_after(seconds):
            await self.sock.send_multipart(frames)
            return True
        return False

    async def recv_multipart(self) -> list[bytes]:
        return await self.sock.recv_multipart()

    async def recv_within(self, seconds: float) -> list[bytes] | None:
        with trio.move_on_after(seconds):
            return await self.sock.recv_multipart()
        return None

    async def wait_event(self, event: str) -> None:
        await self.monitor.wait_for(trimq.EventType[event])

    async def event_within(self, event: str, seconds: float) -> bool:
        with trio.move_on_after(seconds):
            await self.wait_event(event)
            return True
        return False

    def nudge(self) -> None:
        pass

    def subscribe(self, topic: bytes) -> None:
        self.sock.subscribe(topic)

    def unsubscribe(self, topic: bytes) -> None:
        self.sock.unsubscribe(topic)

    @property
    def closed(self) -> bool:
        return self.sock.closed

    async def aclose(self) -> None:
        self.monitor.aclose_nowait()
        await self.sock.aclose(linger=0)


class PyzmqPeer(Peer):
    """A libzmq socket through pyzmq, with a monitor socket attached at creation."""

    kind = "pyzmq"

    def __init__(self, sock: Any, type_name: str) -> None:
        self.sock = sock
        self.type_name = type_name
        self.monitor: Any = sock.get_monitor_socket(_ZMQ_EVENTS)
        self.monitor.rcvtimeo = SOCKET_TIMEOUT_MS
        self.monitor.linger = 0

    async def bind(self, endpoint: str) -> str:
        self.sock.bind(endpoint)
        last: str = self.sock.last_endpoint.decode()
        return last

    async def connect(self, endpoint: str) -> None:
        self.sock.connect(endpoint)

    async def send_multipart(self, frames: Sequence[bytes]) -> None:
        await trio.to_thread.run_sync(self.sock.send_multipart, list(frames))

    async def send_within(self, frames: Sequence[bytes], seconds: float) -> bool:
        def poll_send() -> bool:
            if not self.sock.poll(int(seconds * 1000), zmq.POLLOUT):
                return False
            self.sock.send_multipart(list(frames), zmq.NOBLOCK)
            return True

        return await trio.to_thread.run_sync(poll_send)

    async def recv_multipart(self) -> list[bytes]:
        msg: list[bytes] = await trio.to_thread.run_sync(self.sock.recv_multipart)
        return msg

    async def recv_within(self, seconds: float) -> list[bytes] | None:
        def poll_recv() -> list[bytes] | None:
            if self.sock.poll(int(seconds * 1000), zmq.POLLIN):
                msg: list[bytes] = self.sock.recv_multipart(zmq.NOBLOCK)
                return msg
            return None

        return await trio.to_thread.run_sync(poll_recv)

    def _next_event(self, timeout_ms: int) -> int | None:
        if not self.monitor.poll(timeout_ms, zmq.POLLIN):
            return None
        ev: dict[str, Any] = zmq.utils.monitor.recv_monitor_message(self.monitor)
        code: int = ev["event"]
        return code

    async def wait_event(self, event: str) -> None:
        wanted = getattr(zmq, f"EVENT_{event}")

        def wait() -> None:
            while True:
                code = self._next_event(SOCKET_TIMEOUT_MS)
                if code is None:
                    raise TimeoutError(f"no {event} on {self!r} within {SOCKET_TIMEOUT_MS} ms")
                if code == wanted:
                    return

        await trio.to_thread.run_sync(wait)

    async def event_within(self, event: str, seconds: float) -> bool:
        wanted = getattr(zmq, f"EVENT_{event}")
        deadline = trio.current_time() + seconds

        def one(timeout_ms: int) -> int | None:
            return self._next_event(timeout_ms)

        while (left := deadline - trio.current_time()) > 0:
            code = await trio.to_thread.run_sync(one, max(1, int(left * 1000)))
            if code == wanted:
                return True
        return False

    def nudge(self) -> None:
        self.sock.getsockopt(zmq.EVENTS)

    def subscribe(self, topic: bytes) -> None:
        self.sock.setsockopt(zmq.SUBSCRIBE, topic)

    def unsubscribe(self, topic: bytes) -> None:
        self.sock.setsockopt(zmq.UNSUBSCRIBE, topic)

    @property
    def closed(self) -> bool:
        closed: bool = self.sock.closed
        return closed

    async def close_listener(self, endpoint: str) -> None:
        """Unbind and wait until libzmq really closed the listening socket.

        libzmq closes listeners asynchronously in its I/O thread, so binding the
        same port again right after ``close()`` can fail with EADDRINUSE.
        """
        self.sock.unbind(endpoint)
        await self.wait_event("CLOSED")

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()
        self.sock.disable_monitor()
        self.monitor.close(linger=0)
        self.sock.close(linger=0)


class PeerFactory:
    """Makes peers of either kind: ``make("trimq", "PUSH", sndhwm=10)``.

    Options use libzmq's names; trimq sockets get ``linger=0`` and pyzmq sockets
    ``linger=0`` plus bounded send/receive timeouts unless given otherwise.
    """

    def __init__(self, ctx: trimq.Context, zctx: Any) -> None:
        self.ctx = ctx
        self.zctx = zctx
        self.made: list[Peer] = []

    def trimq(self, type_name: str, **options: Any) -> TrimqPeer:
        options.setdefault("linger", 0)
        sock = self.ctx.socket(trimq.SocketType[type_name], **options)
        peer = TrimqPeer(sock, type_name)
        self.made.append(peer)
        return peer

    def pyzmq(self, type_name: str, **options: Any) -> PyzmqPeer:
        sock = self.zctx.socket(getattr(zmq, type_name))
        options.setdefault("linger", 0)
        options.setdefault("rcvtimeo", SOCKET_TIMEOUT_MS)
        options.setdefault("sndtimeo", SOCKET_TIMEOUT_MS)
        for name, value in options.items():
            sock.setsockopt(getattr(zmq, name.upper()), value)
        zpeer = PyzmqPeer(sock, type_name)
        self.made.append(zpeer)
        return zpeer

    def make(self, kind: str, type_name: str, **options: Any) -> Peer:
        if kind == "trimq":
            return self.trimq(type_name, **options)
        if kind == "pyzmq":
            return self.pyzmq(type_name, **options)
        raise ValueError(kind)

    async def aclose(self) -> None:
        """Close every peer made (pyzmq sockets must be closed before they are collected)."""
        for peer in self.made:
            if not peer.closed:
                await peer.aclose()


class Endpoints:
    """Bind addresses: ``tcp://127.0.0.1:*`` or a fresh ipc path under ``tmp_path``."""

    def __init__(self, tmp_path: Path) -> None:
        self._dir = tmp_path
        self._counter = itertools.count()

    def ipc(self) -> str:
        path = self._dir / f"s{next(self._counter)}.ipc"
        endpoint = f"ipc://{path}"
        # sockaddr_un.sun_path holds 107 bytes plus the NUL.
        assert len(str(path).encode()) < 107, f"ipc path too long: {path}"
        return endpoint

    def bind_address(self, transport: str) -> str:
        if transport == "tcp":
            return "tcp://127.0.0.1:*"
        if transport == "ipc":
            return self.ipc()
        raise ValueError(transport)


def free_tcp_port() -> int:
    """A loopback port that was free a moment ago.

    A plain socket, closed synchronously: a libzmq socket would release the
    port later, from its I/O thread.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
