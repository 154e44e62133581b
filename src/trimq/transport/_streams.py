"""Open tcp and ipc listeners and connections as trio streams.

OS errors are translated here, once, into messages that name the endpoint.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import socket as _stdsocket
import stat
import struct

import trio

from ._endpoint import Endpoint

__all__ = ["Listener", "open_listener", "open_stream", "peer_credentials"]

# Linux's struct ucred: pid_t (signed), uid_t and gid_t (unsigned), native ints.
_UCRED = struct.Struct("iII")
_NO_ID = 0xFFFFFFFF  # (uid_t)-1: the kernel recorded no credentials for the peer
_SO_PEERCRED: int | None = getattr(_stdsocket, "SO_PEERCRED", None)


class Listener:
    """A bound, listening socket and the endpoint string it really bound."""

    def __init__(self, listener: trio.SocketListener, endpoint: str, unlink: str = "") -> None:
        self.listener = listener
        self.endpoint = endpoint
        self._unlink = unlink

    async def accept(self) -> tuple[trio.SocketStream, str]:
        """Wait for the next connection; return it with the peer's address."""
        stream = await self.listener.accept()
        return stream, _peer_name(stream)

    def close(self) -> None:
        """Stop listening now (and remove our ipc socket file, once).

        Synchronous so that when ``unbind``/``aclose`` returns the address can be
        bound again at once.
        """
        self.listener.socket.close()
        if self._unlink:
            path, self._unlink = self._unlink, ""
            with contextlib.suppress(OSError):
                os.unlink(path)


def peer_ip(stream: trio.abc.Stream) -> str:
    """The peer's IP address without the port (what ZAP calls its address);
    ``""`` for ipc and anything else that is not IP."""
    if not isinstance(stream, trio.SocketStream):
        return ""
    try:
        name = stream.socket.getpeername()
    except OSError:
        return ""
    return str(name[0]) if isinstance(name, tuple) else ""


def peer_credentials(stream: trio.abc.Stream) -> tuple[int, int, int] | None:
    """The (pid, uid, gid) the kernel recorded for the other end of an ipc
    connection: the connecting process on an accepted stream, the listening
    one on a connected stream. ``None`` for anything but a unix stream socket,
    where the platform has no ``SO_PEERCRED``, or if asking fails; never raises.
    """
    if _SO_PEERCRED is None or not isinstance(stream, trio.SocketStream):
        return None
    sock = stream.socket
    if sock.family != _stdsocket.AF_UNIX:
        return None
    try:
        raw = sock.getsockopt(_stdsocket.SOL_SOCKET, _SO_PEERCRED, _UCRED.size)
        pid, uid, gid = _UCRED.unpack(raw)
    except (OSError, struct.error):
        return None
    if uid == _NO_ID:
        return None
    return int(pid), int(uid), int(gid)


def _peer_name(stream: trio.SocketStream) -> str:
    try:
        name = stream.socket.getpeername()
    except OSError:
        return ""
    if isinstance(name, tuple):
        host, port = name[0], name[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(name) or "ipc"


async def open_listener(ep: Endpoint, *, backlog: int, ipv6: bool) -> Listener:
    """Bind and listen on a tcp or ipc endpoint."""
    if ep.transport == "tcp":
        return await _tcp_listener(ep, backlog, ipv6)
    return await _ipc_listener(ep, backlog)


async def _tcp_listener(ep: Endpoint, backlog: int, ipv6: bool) -> Listener:
    host = ep.host
    if host == "*":
        family, addr = (trio.socket.AF_INET6, "::") if ipv6 else (trio.socket.AF_INET, "0.0.0.0")
    else:
        infos = await trio.socket.getaddrinfo(
            host, ep.port, type=trio.socket.SOCK_STREAM, flags=trio.socket.AI_PASSIVE
        )
        if not infos:
            raise OSError(errno.EADDRNOTAVAIL, f"cannot resolve {host!r}")
        family, addr = infos[0][0], str(infos[0][4][0])
    sock = trio.socket.socket(family, trio.socket.SOCK_STREAM)
    try:
        sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEADDR, 1)
        if family == trio.socket.AF_INET6:
            sock.setsockopt(trio.socket.IPPROTO_IPV6, trio.socket.IPV6_V6ONLY, 0 if ipv6 else 1)
        await sock.bind((addr, ep.port))
        sock.listen(backlog or 1)
    except BaseException:
        sock.close()
        raise
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else str(bound_host)
    return Listener(trio.SocketListener(sock), f"tcp://{shown}:{bound_port}")


def _is_live_unix_socket(path: str) -> bool:
    with _stdsocket.socket(_stdsocket.AF_UNIX, _stdsocket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


async def _ipc_listener(ep: Endpoint, backlog: int) -> Listener:
    path = ep.path
    abstract = path.startswith("\0")
    if not abstract:
        with contextlib.suppress(FileNotFoundError):
            mode = os.stat(path).st_mode
            if not stat.S_ISSOCK(mode):
                raise OSError(errno.EEXIST, f"{path} exists and is not a socket; not replacing it")
            # A socket file nobody listens on is left over from a dead process.
            if _is_live_unix_socket(path):
                raise OSError(errno.EADDRINUSE, f"another process is listening on {path}")
            os.unlink(path)
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    try:
        await sock.bind(path)
        sock.listen(backlog or 1)
    except BaseException:
        sock.close()
        raise
    return Listener(trio.SocketListener(sock), str(ep), "" if abstract else path)


async def open_stream(ep: Endpoint, *, timeout_ms: int = 0) -> tuple[trio.SocketStream, str]:
    """Connect to a tcp or ipc endpoint; return the stream and the peer's address."""
    timeout = timeout_ms / 1000 if timeout_ms > 0 else math.inf
    with trio.fail_after(timeout):
        if ep.transport == "tcp":
            stream = await trio.open_tcp_stream(ep.host, ep.port)
        else:
            sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
            try:
                await sock.connect(ep.path)
            except BaseException:
                sock.close()
                raise
            stream = trio.SocketStream(sock)
    return stream, _peer_name(stream) if ep.transport == "tcp" else str(ep)
