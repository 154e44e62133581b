"""The 64-byte ZMTP 3.x greeting (rfc 23/37): encoding and incremental checks.

The checks run on every partial greeting so that a peer that is not speaking
ZMTP 3 is refused as soon as one byte proves it, not after we have waited for
64 bytes that an HTTP client, say, will never send.
"""

from __future__ import annotations

import attrs

from .._errors import HandshakeError

__all__ = ["GREETING_SIZE", "PeerGreeting", "check_greeting", "encode_greeting"]

GREETING_SIZE = 64
"""Length of a ZMTP 3.x greeting in bytes."""

_SIGNATURE = 0xFF
_MECHANISM_START = 12
_MECHANISM_END = 32
_AS_SERVER = 32

# First bytes of common non-ZMTP clients, so the error says what probably
# connected rather than just "bad signature".
_HTTP_FIRST_BYTES = frozenset(b"GPHDOCT")
_TLS_HANDSHAKE = 0x16


def encode_greeting(
    mechanism: bytes = b"NULL", as_server: bool = False, *, minor: int = 1, identity_size: int = 0
) -> bytes:
    """Build a ZMTP 3.x greeting.

    Args:
        mechanism: Security mechanism name, at most 20 ASCII bytes (e.g. ``b"NULL"``).
        as_server: The as-server flag; only PLAIN and CURVE servers set it.
        minor: Minor protocol version to advertise (1 = ZMTP 3.1, 0 = ZMTP 3.0).
        identity_size: Goes into the padding as libzmq does (a big-endian u64 of
            ``identity_size + 1``, a relic of ZMTP 1.0 framing) so captures
            match libzmq byte for byte. Peers must not validate the padding.

    Returns:
        The 64 greeting bytes.

    Raises:
        ValueError: ``mechanism`` is longer than 20 bytes or ``minor`` is not a byte.

    .. versionadded:: 0.1
    """
    if len(mechanism) > _MECHANISM_END - _MECHANISM_START:
        raise ValueError(f"mechanism name {mechanism!r} is longer than 20 bytes")
    if not 0 <= minor <= 255:
        raise ValueError(f"minor version {minor} is not a byte")
    return b"".join(
        (
            bytes((_SIGNATURE,)),
            (identity_size + 1).to_bytes(8, "big"),
            bytes((0x7F, 3, minor)),
            mechanism.ljust(20, b"\x00"),
            bytes((1 if as_server else 0,)),
            bytes(31),
        )
    )


@attrs.frozen
class PeerGreeting:
    """What a complete, acceptable peer greeting told us.

    Attributes:
        major: Major version byte (3 or more).
        minor: Effective minor version: 0 for ZMTP 3.0, else 1.
        mechanism: The peer's mechanism name without NUL padding.
        as_server: The peer's as-server flag.
    """

    major: int
    minor: int
    mechanism: bytes
    as_server: bool


def _describe_byte(value: int) -> str:
    if 0x20 <= value < 0x7F:
        return f"0x{value:02X} {chr(value)!r}"
    return f"0x{value:02X}"


def _mechanism_text(name: bytes) -> str:
    return name.decode("ascii", "backslashreplace") or "<empty>"


def check_greeting(data: bytes | bytearray, mechanism: bytes) -> PeerGreeting | None:
    """Validate as much of a peer greeting as has arrived.

    Args:
        data: The first ``len(data)`` (at most 64) bytes the peer sent.
        mechanism: Our mechanism name; the peer's must be identical.

    Returns:
        ``None`` while fewer than 64 bytes are available, else the parsed greeting.

    Raises:
        HandshakeError: Something already received rules out talking ZMTP 3 with
            this peer: not ZMTP at all, ZMTP 1.0 or 2.0, or another mechanism.
    """
    n = len(data)
    if n >= 1 and data[0] != _SIGNATURE:
        first = data[0]
        if first in _HTTP_FIRST_BYTES:
            hint = "an HTTP client?"
        elif first == _TLS_HANDSHAKE:
            hint = "a TLS client? ZMTP is not TLS-wrapped"
        else:
            hint = "a ZMTP 1.0 peer or another protocol?"
        raise HandshakeError(
            f"peer is not speaking ZMTP 3 (first byte {_describe_byte(first)}); {hint}"
        )
    if n >= 10 and not data[9] & 0x01:
        raise HandshakeError(
            f"peer speaks ZMTP 1.0 (greeting byte 9 is 0x{data[9]:02X}), "
            "not supported: trimq speaks ZMTP 3.x only"
        )
    if n >= 11 and data[10] < 3:
        major = data[10]
        old = "ZMTP 2.0" if major == 1 else "ZMTP 1.0" if major == 0 else f"ZMTP {major}.x"
        raise HandshakeError(
            f"peer speaks {old} (version byte {major}), not supported: "
            "trimq speaks ZMTP 3.x only (libzmq >= 4.0)"
        )
    if n >= _MECHANISM_END:
        theirs = bytes(data[_MECHANISM_START:_MECHANISM_END]).rstrip(b"\x00")
        if theirs != mechanism:
            raise HandshakeError(
                f"security mechanism mismatch: we use {_mechanism_text(mechanism)}, "
                f"the peer uses {_mechanism_text(theirs)}"
            )
    if n < GREETING_SIZE:
        return None
    major = data[10]
    # Only an explicit 3.0 is treated as 3.0. A newer major version promises to
    # speak ours (rfc 37 "backwards interoperability"), and any 3.x minor
    # above 1 includes 3.1.
    minor = 0 if major == 3 and data[11] == 0 else 1
    return PeerGreeting(
        major=major, minor=minor, mechanism=mechanism, as_server=bool(data[_AS_SERVER])
    )
