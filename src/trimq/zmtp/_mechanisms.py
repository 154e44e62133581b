"""Security mechanisms: the pluggable part of the ZMTP handshake (rfc 23/37).

After both greetings, the mechanism runs the handshake by exchanging command
frames; it ends when the mechanism has the peer's metadata (its READY, or
INITIATE on a PLAIN/CURVE server). A mechanism that encrypts (CURVE) then also
wraps every frame in both directions; :class:`ZmtpConnection` keeps that off
its fast path by checking :attr:`Mechanism.transforms_frames` once.

Only NULL is implemented here; PLAIN and CURVE will subclass :class:`Mechanism`.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import ClassVar

import attrs

from .._errors import HandshakeError
from ._commands import READY, decode_properties, encode_command, encode_properties

__all__ = ["HandshakeStep", "Mechanism", "NullMechanism"]


@attrs.frozen
class HandshakeStep:
    """What a mechanism wants done after it starts or handles a command.

    Attributes:
        commands: Command bodies (u8 name length, name, data) to send, in order.
        peer_properties: ``None`` while the handshake goes on; once the peer's
            metadata is known and nothing more is expected from it, its
            properties by exact name, which ends the handshake.

    .. versionadded:: 0.1
    """

    commands: Sequence[bytes] = ()
    peer_properties: dict[str, bytes] | None = None


class Mechanism(abc.ABC):
    """Base class of security mechanisms. One instance serves one connection.

    The connection owns the greeting, framing, ERROR handling and the checks on
    the peer's metadata (``Socket-Type``, ``Identity``); a mechanism only
    decides which handshake commands to send and how to read the peer's.

    .. versionadded:: 0.1
    """

    name: ClassVar[bytes]
    """Name in the greeting, e.g. ``b"NULL"``; both sides must use the same."""

    transforms_frames: ClassVar[bool] = False
    """True if, after the handshake, every frame goes through
    :meth:`encode_frame` / :meth:`decode_frame` (CURVE's MESSAGE boxes).
    False lets the connection use its fast path and never call them."""

    frame_overhead: ClassVar[int] = 0
    """Most bytes :meth:`encode_frame` adds to a frame body. The connection
    subtracts it from a wrapped frame's announced size to enforce ``maxmsgsize``
    from the header, before buffering the body."""

    as_server: bool = False
    """The as-server flag of our greeting (set only by PLAIN/CURVE servers)."""

    def check_peer_greeting(self, *, peer_as_server: bool) -> None:  # noqa: B027
        """Vet the peer's as-server flag once its greeting has arrived.

        The default accepts anything (NULL ignores the flag). PLAIN and CURVE
        need exactly one server and override this.

        Args:
            peer_as_server: The flag from the peer's greeting.

        Raises:
            HandshakeError: The combination is not allowed.
        """

    @abc.abstractmethod
    def start(self, properties: Sequence[tuple[str, bytes]]) -> HandshakeStep:
        """Begin the handshake, right after the greetings are exchanged.

        Args:
            properties: Our metadata (``Socket-Type`` first), in wire order, to
                send whenever the mechanism's protocol calls for it.

        Returns:
            Commands to send now (and the peer's properties if, unusually, the
            handshake is already complete).
        """

    @abc.abstractmethod
    def handle_command(self, name: bytes, data: bytes) -> HandshakeStep:
        """Process one handshake command from the peer (never ERROR: the
        connection handles that itself).

        Args:
            name: Command name, e.g. ``b"READY"``.
            data: The rest of the command body.

        Returns:
            Commands to send, and the peer's properties once the handshake is done.

        Raises:
            HandshakeError: The command is unexpected or malformed.
        """

    def encode_frame(self, flags: int, body: bytes) -> tuple[int, bytes]:
        """Wrap one outgoing frame after the handshake (only if
        :attr:`transforms_frames`).

        Args:
            flags: MORE and/or COMMAND bits of the frame as the application sees it.
            body: Its body.

        Returns:
            ``(flags, body)`` of the frame to put on the wire; the connection adds
            the LONG bit and size. The default is the identity.
        """
        return flags, body

    def decode_frame(self, flags: int, body: bytes) -> tuple[int, bytes]:
        """Unwrap one incoming frame after the handshake (only if
        :attr:`transforms_frames`). ERROR commands are handled before this.

        Args:
            flags: The wire frame's flags (LONG already consumed).
            body: The wire frame's body.

        Returns:
            ``(flags, body)`` of the frame inside: MORE and/or COMMAND bits and
            payload. The default is the identity.

        Raises:
            RemoteProtocolError: The frame is not a valid wrapped frame.
        """
        return flags, body


class NullMechanism(Mechanism):
    """The NULL mechanism (rfc 37): no security; both sides just send READY.

    .. versionadded:: 0.1
    """

    name: ClassVar[bytes] = b"NULL"

    def start(self, properties: Sequence[tuple[str, bytes]]) -> HandshakeStep:
        """Send READY with our metadata at once.

        Args:
            properties: Our metadata.

        Returns:
            The READY command.
        """
        return HandshakeStep(commands=(encode_command(READY, encode_properties(properties)),))

    def handle_command(self, name: bytes, data: bytes) -> HandshakeStep:
        """Accept the peer's READY, which completes the handshake.

        Args:
            name: Command name.
            data: Command data.

        Returns:
            The peer's properties.

        Raises:
            HandshakeError: Anything but a well-formed READY.
        """
        if name != READY:
            shown = name.decode("ascii", "backslashreplace")
            raise HandshakeError(f"peer sent a {shown} command before READY (NULL handshake)")
        return HandshakeStep(peer_properties=decode_properties(data, "READY"))
