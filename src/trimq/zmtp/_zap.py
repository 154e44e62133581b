"""ZAP, the ZeroMQ Authentication Protocol (rfc 27): request and reply messages.

A socket that must authenticate a peer sends a :class:`ZapRequest` to the
handler bound at :data:`ZAP_ENDPOINT` in its context and waits for the
:class:`ZapReply`. The handler is a REP socket, so on the wire each message
also carries REQ/REP's empty delimiter frame; :meth:`ZapRequest.encode` and
:meth:`ZapReply.encode` return the frames after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import attrs

from .._errors import RemoteProtocolError
from ._commands import decode_properties, encode_properties

__all__ = ["ZAP_ENDPOINT", "ZAP_VERSION", "ZapError", "ZapReply", "ZapRequest"]

ZAP_ENDPOINT: Final = "inproc://zeromq.zap.01"
"""Where a context's ZAP handler binds (a REP socket)."""

ZAP_VERSION: Final = b"1.0"

_CREDENTIALS: Final = {b"NULL": 0, b"PLAIN": 2, b"CURVE": 1}
_STATUS: Final = frozenset({b"200", b"300", b"400", b"500"})


class ZapError(RemoteProtocolError):
    """A ZAP request or reply is malformed.

    .. versionadded:: 0.1
    """


@attrs.frozen
class ZapRequest:
    """One authentication request (rfc 27).

    Attributes:
        request_id: Opaque; the reply echoes it.
        domain: The server socket's ``zap_domain`` (may be empty).
        address: The peer's IP address, as text (no port).
        routing_id: The server socket's own ``routing_id``, as libzmq sends it.
        mechanism: ``b"NULL"``, ``b"PLAIN"`` or ``b"CURVE"``.
        credentials: PLAIN: ``(username, password)``; CURVE: the client's
            32-byte long-term public key; NULL: none.

    .. versionadded:: 0.1
    """

    request_id: bytes
    domain: bytes
    address: bytes
    routing_id: bytes
    mechanism: bytes
    credentials: tuple[bytes, ...] = ()

    def encode(self) -> list[bytes]:
        """The request's frames, after the REQ/REP delimiter."""
        return [
            ZAP_VERSION,
            self.request_id,
            self.domain,
            self.address,
            self.routing_id,
            self.mechanism,
            *self.credentials,
        ]

    @classmethod
    def decode(cls, frames: Sequence[bytes]) -> ZapRequest:
        """Parse a request's frames (after the delimiter).

        Raises:
            ZapError: Wrong version, too few frames, or credentials that do not
                fit the mechanism.
        """
        if len(frames) < 6:
            raise ZapError(f"ZAP request has {len(frames)} frames; at least 6 are required")
        if frames[0] != ZAP_VERSION:
            raise ZapError(f"ZAP request version is {bytes(frames[0])!r}, expected b'1.0'")
        mechanism = bytes(frames[5])
        credentials = tuple(bytes(f) for f in frames[6:])
        expected = _CREDENTIALS.get(mechanism)
        if expected is not None and len(credentials) != expected:
            raise ZapError(
                f"ZAP request for {mechanism.decode('ascii', 'replace')} carries "
                f"{len(credentials)} credential frames, expected {expected}"
            )
        if mechanism == b"CURVE" and len(credentials[0]) != 32:
            raise ZapError(f"ZAP CURVE credential is {len(credentials[0])} bytes, expected 32")
        return cls(
            request_id=bytes(frames[1]),
            domain=bytes(frames[2]),
            address=bytes(frames[3]),
            routing_id=bytes(frames[4]),
            mechanism=mechanism,
            credentials=credentials,
        )


@attrs.frozen
class ZapReply:
    """The handler's answer (rfc 27).

    Attributes:
        request_id: The request's id.
        status_code: ``b"200"`` (accepted), ``b"300"`` (temporary failure),
            ``b"400"`` (refused) or ``b"500"`` (internal error).
        status_text: Human-readable reason.
        user_id: The identity the handler vouches for; exposed as ``User-Id``.
        metadata: Extra properties to attach to the peer's messages.

    .. versionadded:: 0.1
    """

    request_id: bytes
    status_code: bytes
    status_text: bytes = b""
    user_id: bytes = b""
    metadata: dict[str, bytes] = attrs.field(factory=dict)

    @property
    def accepted(self) -> bool:
        """True for status 200."""
        return self.status_code == b"200"

    def encode(self) -> list[bytes]:
        """The reply's frames, after the REQ/REP delimiter."""
        return [
            ZAP_VERSION,
            self.request_id,
            self.status_code,
            self.status_text,
            self.user_id,
            encode_properties(self.metadata.items()),
        ]

    @classmethod
    def decode(cls, frames: Sequence[bytes]) -> ZapReply:
        """Parse a reply's frames (after the delimiter).

        Raises:
            ZapError: Wrong version or frame count, an unknown status code, or
                metadata that is not valid ZMTP properties.
        """
        if len(frames) != 6:
            raise ZapError(f"ZAP reply has {len(frames)} frames, expected 6")
        if frames[0] != ZAP_VERSION:
            raise ZapError(f"ZAP reply version is {bytes(frames[0])!r}, expected b'1.0'")
        status = bytes(frames[2])
        if status not in _STATUS:
            raise ZapError(f"ZAP reply status {status!r} is not 200, 300, 400 or 500")
        try:
            metadata = decode_properties(bytes(frames[5]), "ZAP reply")
        except RemoteProtocolError as exc:
            raise ZapError(f"ZAP reply metadata is malformed: {exc}") from None
        return cls(
            request_id=bytes(frames[1]),
            status_code=status,
            status_text=bytes(frames[3]),
            user_id=bytes(frames[4]),
            metadata=metadata,
        )
