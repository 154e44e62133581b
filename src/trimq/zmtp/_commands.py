"""ZMTP command bodies: READY metadata, ERROR, PING/PONG, SUBSCRIBE/CANCEL.

A command body is a u8 name length, the name, then command-specific data.
These helpers build and take apart bodies only; framing is ``_frames``' job.
Metadata (property) encoding is shared by every mechanism: NULL sends it in
READY, PLAIN and CURVE in INITIATE and READY.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from .._errors import HandshakeError, LocalProtocolError, RemoteProtocolError
from ._events import Ping
from ._sockettype import SocketType, peer_allowed

__all__ = [
    "CANCEL",
    "ERROR",
    "MAX_PING_CONTEXT",
    "PING",
    "PONG",
    "READY",
    "SUBSCRIBE",
    "check_peer_properties",
    "decode_error",
    "decode_ping",
    "decode_properties",
    "encode_command",
    "encode_error",
    "encode_ping",
    "encode_properties",
    "split_command",
    "validate_metadata",
]

READY: Final = b"READY"
ERROR: Final = b"ERROR"
PING: Final = b"PING"
PONG: Final = b"PONG"
SUBSCRIBE: Final = b"SUBSCRIBE"
CANCEL: Final = b"CANCEL"

MAX_PING_CONTEXT: Final = 16
"""rfc 37 caps a PING context at 16 bytes."""

_MAX_TTL_DECISECONDS: Final = 0xFFFF


def encode_command(name: bytes, data: bytes = b"") -> bytes:
    """Build a command body: u8 name length, name, data.

    Args:
        name: Command name, 1-255 bytes.
        data: Command-specific payload.

    Returns:
        The body, ready for ``encode_command_frame``.
    """
    return bytes((len(name),)) + name + data


def split_command(body: bytes) -> tuple[bytes, bytes]:
    """Split a received command body into name and data.

    Args:
        body: The command frame's body.

    Returns:
        ``(name, data)``.

    Raises:
        RemoteProtocolError: The body is empty or shorter than its name length says.
    """
    if not body:
        raise RemoteProtocolError("peer sent an empty command frame (no command name)")
    end = 1 + body[0]
    if end > len(body):
        raise RemoteProtocolError(
            f"peer sent a malformed command: name length {body[0]} but only "
            f"{len(body) - 1} bytes follow"
        )
    return body[1:end], body[end:]


def validate_metadata(metadata: Mapping[str, bytes] | None) -> list[tuple[str, bytes]]:
    """Check user metadata the way libzmq's ``ZMQ_METADATA`` does.

    Args:
        metadata: Property name to value; names must start with ``"X-"`` so they
            cannot shadow ZMTP's own properties (``Socket-Type``, ``Identity``...).

    Returns:
        The properties as a list of pairs, in the caller's order.

    Raises:
        LocalProtocolError: A name lacks the ``X-`` prefix or is too long, or a value
            is not bytes.
    """
    if not metadata:
        return []
    checked = []
    for name, value in metadata.items():
        if not name.startswith("X-"):
            raise LocalProtocolError(
                f"metadata property {name!r} must start with 'X-' (as libzmq requires); "
                "ZMTP's own properties such as Socket-Type are set by trimq"
            )
        if len(name.encode()) > 255:
            raise LocalProtocolError(f"metadata property name {name!r} is over 255 bytes")
        if not isinstance(value, bytes | bytearray | memoryview):
            raise LocalProtocolError(
                f"metadata property {name!r} must be bytes, not {type(value).__name__}"
            )
        checked.append((name, bytes(value)))
    return checked


def encode_properties(properties: Iterable[tuple[str, bytes]]) -> bytes:
    """Encode metadata: per property a u8 name length, name, u32 BE value length, value.

    Args:
        properties: ``(name, value)`` pairs, in wire order.

    Returns:
        The concatenated properties.
    """
    parts = []
    for name, value in properties:
        raw = name.encode()
        parts.append(bytes((len(raw),)) + raw + len(value).to_bytes(4, "big") + value)
    return b"".join(parts)


def decode_properties(data: bytes, command: str = "READY") -> dict[str, bytes]:
    """Parse metadata sent by the peer.

    Args:
        data: The properties part of the command.
        command: Command name, for error messages.

    Returns:
        Name to value. Names are case-sensitive (as in libzmq); a repeated name
        keeps the last value.

    Raises:
        HandshakeError: A length runs past the end of the data, or a name is not UTF-8.
    """
    properties: dict[str, bytes] = {}
    p = 0
    n = len(data)
    while p < n:
        name_end = p + 1 + data[p]
        if name_end + 4 > n:
            raise HandshakeError(
                f"peer sent a malformed {command}: property at offset {p} is truncated"
            )
        try:
            name = data[p + 1 : name_end].decode()
        except UnicodeDecodeError:
            raise HandshakeError(
                f"peer sent a malformed {command}: property name "
                f"{data[p + 1 : name_end]!r} is not UTF-8"
            ) from None
        value_end = name_end + 4 + int.from_bytes(data[name_end : name_end + 4], "big")
        if value_end > n:
            raise HandshakeError(
                f"peer sent a malformed {command}: value of property {name!r} is truncated"
            )
        properties[name] = data[name_end + 4 : value_end]
        p = value_end
    return properties


def encode_ping(ttl: float, context: bytes) -> bytes:
    """Build a PING body.

    Args:
        ttl: Seconds the peer should wait for our traffic; sent in deciseconds,
            clamped to 0-65535 (about 1.8 hours).
        context: At most 16 bytes, echoed in the PONG.

    Returns:
        The command body.

    Raises:
        LocalProtocolError: ``context`` is longer than 16 bytes.
    """
    if len(context) > MAX_PING_CONTEXT:
        raise LocalProtocolError(
            f"PING context is {len(context)} bytes; ZMTP allows at most {MAX_PING_CONTEXT}"
        )
    deciseconds = min(max(round(ttl * 10), 0), _MAX_TTL_DECISECONDS)
    return encode_command(PING, deciseconds.to_bytes(2, "big") + bytes(context))


def decode_ping(data: bytes) -> Ping:
    """Parse the data of a PING command.

    Args:
        data: TTL (u16 BE deciseconds) plus context.

    Returns:
        The event. A context over 16 bytes is cut to 16, as libzmq does, rather
        than refused.

    Raises:
        RemoteProtocolError: The TTL is missing.
    """
    if len(data) < 2:
        raise RemoteProtocolError(
            f"peer sent a malformed PING: {len(data)} data bytes, the TTL needs 2"
        )
    return Ping(ttl=int.from_bytes(data[:2], "big") / 10, context=data[2 : 2 + MAX_PING_CONTEXT])


def encode_error(reason: str) -> bytes:
    """Build an ERROR body: u8 reason length + reason.

    Args:
        reason: Why we are closing; UTF-8, at most 255 bytes.

    Returns:
        The command body.

    Raises:
        LocalProtocolError: The reason is over 255 bytes.
    """
    raw = reason.encode()
    if len(raw) > 255:
        raise LocalProtocolError(f"ERROR reason is {len(raw)} bytes; ZMTP allows at most 255")
    return encode_command(ERROR, bytes((len(raw),)) + raw)


def decode_error(data: bytes) -> str:
    """Extract the reason from an ERROR command, leniently: the connection is
    ending anyway, so a malformed reason is shown rather than rejected.

    Args:
        data: u8 reason length + reason.

    Returns:
        The reason text (undecodable bytes replaced).
    """
    reason = data[1 : 1 + data[0]] if data else b""
    return reason.decode("utf-8", "replace")


def check_peer_properties(
    ours: SocketType, properties: Mapping[str, bytes]
) -> tuple[SocketType, bytes]:
    """Vet the metadata that completed the peer's handshake.

    Args:
        ours: Our socket type.
        properties: The peer's properties by exact name.

    Returns:
        The peer's socket type and identity (``b""`` if it sent none).

    Raises:
        HandshakeError: ``Socket-Type`` is missing, unknown or incompatible with
            ours, or ``Identity`` is over 255 bytes.
    """
    raw_type = properties.get("Socket-Type")
    if raw_type is None:
        raise HandshakeError("peer's handshake metadata has no Socket-Type property")
    try:
        theirs = SocketType.from_zmtp_name(raw_type)
    except ValueError:
        raise HandshakeError(
            f"peer's Socket-Type {raw_type!r} is unknown to trimq "
            "(draft socket types such as CLIENT or RADIO are not supported)"
        ) from None
    if not peer_allowed(ours, theirs):
        raise HandshakeError(f"incompatible socket types: {ours.name} cannot talk to {theirs.name}")
    identity = properties.get("Identity", b"")
    if len(identity) > 255:
        raise HandshakeError(f"peer's Identity is {len(identity)} bytes; ZMTP allows 0-255")
    return theirs, identity
