"""Parse ``transport://address`` endpoint strings into frozen values."""

from __future__ import annotations

import os
import tempfile
import uuid
from typing import Literal

import attrs

from .._errors import InvalidEndpointError, UnsupportedTransportError

__all__ = ["Endpoint", "parse_endpoint"]

Transport = Literal["tcp", "ipc", "inproc"]
_KNOWN_UNSUPPORTED = ("pgm", "epgm", "tipc", "vmci", "vsock", "norm", "ws", "wss", "udp")
# sockaddr_un.sun_path is 108 bytes on Linux, including the terminating NUL.
_MAX_IPC_PATH = 107


@attrs.frozen
class Endpoint:
    """A parsed endpoint.

    For ``tcp`` ``host`` is a name or address (brackets stripped from IPv6, ``*``
    for every interface) and ``port`` is ``0`` for "pick one". For ``ipc``
    ``path`` is a filesystem path, or starts with NUL for Linux's abstract
    namespace (written ``ipc://@name``). For ``inproc`` ``path`` is the name.
    """

    transport: Transport
    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        if self.transport == "tcp":
            host = f"[{self.host}]" if ":" in self.host else self.host
            return f"tcp://{host}:{self.port if self.port else '*'}"
        if self.transport == "ipc" and self.path.startswith("\0"):
            return "ipc://@" + self.path[1:]
        return f"{self.transport}://{self.path}"

    @property
    def is_wildcard_port(self) -> bool:
        """True for ``tcp://host:*`` or ``tcp://host:0``."""
        return self.transport == "tcp" and self.port == 0


def parse_endpoint(text: str, *, for_bind: bool = False) -> Endpoint:
    """Parse ``text`` such as ``tcp://127.0.0.1:5555``, ``ipc:///tmp/x`` or ``inproc://name``.

    Raises:
        InvalidEndpointError: the string is malformed.
        UnsupportedTransportError: the transport exists in ZeroMQ but not in trimq.
    """
    if not isinstance(text, str):
        raise InvalidEndpointError(f"endpoint must be a str, not {type(text).__name__}")
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise InvalidEndpointError(
            f"endpoint {text!r} has no transport; write e.g. 'tcp://127.0.0.1:5555'"
        )
    if scheme == "tcp":
        return _parse_tcp(text, rest, for_bind)
    if scheme == "ipc":
        return _parse_ipc(text, rest, for_bind)
    if scheme == "inproc":
        if not rest:
            raise InvalidEndpointError(f"inproc endpoint {text!r} needs a name")
        return Endpoint("inproc", path=rest)
    if scheme in _KNOWN_UNSUPPORTED:
        raise UnsupportedTransportError(
            f"transport {scheme!r} is not supported by trimq; use tcp, ipc or inproc"
        )
    raise InvalidEndpointError(f"unknown transport {scheme!r} in {text!r}")


def _parse_tcp(text: str, rest: str, for_bind: bool) -> Endpoint:
    # libzmq also allows "tcp://src_addr;dst:port"; trimq does not.
    if rest.startswith("["):
        host, close, tail = rest[1:].partition("]")
        if not close or not tail.startswith(":"):
            raise InvalidEndpointError(f"bad IPv6 endpoint {text!r}; write tcp://[::1]:5555")
        port_text = tail[1:]
    else:
        host, colon, port_text = rest.rpartition(":")
        if not colon or ":" in host:
            raise InvalidEndpointError(
                f"tcp endpoint {text!r} needs host:port (IPv6 addresses go in brackets)"
            )
    if not host:
        raise InvalidEndpointError(f"tcp endpoint {text!r} has no host")
    if host == "*" and not for_bind:
        raise InvalidEndpointError(f"cannot connect to wildcard host in {text!r}")
    if port_text in ("*", "0"):
        if not for_bind:
            raise InvalidEndpointError(f"cannot connect to a wildcard port in {text!r}")
        return Endpoint("tcp", host=host, port=0)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InvalidEndpointError(f"bad port {port_text!r} in {text!r}; use 1-65535 or *")
    return Endpoint("tcp", host=host, port=int(port_text))


def _parse_ipc(text: str, rest: str, for_bind: bool) -> Endpoint:
    if not rest:
        raise InvalidEndpointError(f"ipc endpoint {text!r} needs a path")
    if rest == "*":
        if not for_bind:
            raise InvalidEndpointError("cannot connect to ipc://*")
        path = os.path.join(tempfile.gettempdir(), f"trimq-{uuid.uuid4().hex[:16]}.ipc")
    elif rest.startswith("@"):
        path = "\0" + rest[1:]
    else:
        path = rest
    if len(os.fsencode(path)) > _MAX_IPC_PATH:
        raise InvalidEndpointError(
            f"ipc path in {text!r} is longer than {_MAX_IPC_PATH} bytes, the OS limit"
        )
    return Endpoint("ipc", path=path)
