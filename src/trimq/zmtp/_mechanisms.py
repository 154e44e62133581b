"""Security mechanisms: the pluggable part of the ZMTP handshake (rfc 23/37).

After both greetings, the mechanism runs the handshake by exchanging command
frames; it ends when the mechanism has the peer's metadata (its READY, or
INITIATE on a PLAIN/CURVE server). A mechanism that encrypts (CURVE) then also
wraps every frame in both directions; :class:`ZmtpConnection` keeps that off
its fast path by checking :attr:`Mechanism.transforms_frames` once.

NULL lives here; PLAIN and CURVE are in ``_plain`` and ``_curve``.

Authentication (ZAP, rfc 27) is asynchronous, so a mechanism never does it
itself: it returns a :class:`HandshakeStep` with ``authenticate`` set, the
connection reports an :class:`~trimq.zmtp.AuthRequest` event, and whoever
drives the connection answers with :meth:`ZmtpConnection.auth_result`, which
calls :meth:`Mechanism.auth_accepted` on success.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import ClassVar

import attrs

from .._errors import HandshakeError, LocalProtocolError
from ._commands import READY, decode_properties, encode_command, encode_properties

__all__ = ["HandshakeStep", "Mechanism", "NullMechanism", "refuse_two_servers"]


@attrs.frozen
class HandshakeStep:
    """What a mechanism wants done after it starts or handles a command.

    Attributes:
        commands: Command bodies (u8 name length, name, data) to send, in order.
        peer_properties: ``None`` while the handshake goes on; once the peer's
            metadata is known and nothing more is expected from it, its
            properties by exact name, which ends the handshake.
        authenticate: Credentials to check through ZAP before the handshake
            may go on (``()`` for NULL, ``(username, password)`` for PLAIN,
            ``(client_public_key,)`` for CURVE); ``None`` if no check is due.

    .. versionadded:: 0.1
    """

    commands: Sequence[bytes] = ()
    peer_properties: dict[str, bytes] | None = None
    authenticate: tuple[bytes, ...] | None = None


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

    @property
    def peer_key(self) -> bytes | None:
        """The peer's proven long-term public key (CURVE), else ``None``."""
        return None

    @property
    def waiting_for(self) -> str:
        """What the handshake waits for, for error messages (e.g. ``"READY"``)."""
        return "the peer's handshake"

    def check_peer_greeting(self, *, peer_as_server: bool) -> None:  # noqa: B027
        """Vet the peer's as-server flag once its greeting has arrived.

        The default accepts anything (NULL ignores the flag); PLAIN and CURVE
        servers use :func:`refuse_two_servers`.

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

    def auth_accepted(self) -> HandshakeStep:
        """Go on after the authenticator accepted the credentials this mechanism
        asked about (see :attr:`HandshakeStep.authenticate`).

        Returns:
            Commands to send, and the peer's properties if that completes the handshake.

        Raises:
            LocalProtocolError: No authentication was pending.
        """
        raise LocalProtocolError(f"{self.name.decode()} mechanism asked for no authentication")

    def encode_frame(self, flags: int, body: bytes) -> tuple[int, bytes | bytearray]:
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


def refuse_two_servers(mechanism: Mechanism, *, peer_as_server: bool) -> None:
    """A PLAIN or CURVE server's greeting check: the peer must not be a server too.

    Nothing else can be checked: libzmq's greeting says "client" even on a
    server, so a client must not insist on the flag.

    Raises:
        HandshakeError: Both sides are servers.
    """
    if peer_as_server:
        name = mechanism.name.decode()
        raise HandshakeError(
            f"both sides are {name} servers: only one side sets {name.lower()}_server"
        )


class NullMechanism(Mechanism):
    """The NULL mechanism (rfc 37): no security; both sides just send READY.

    Args:
        authenticate: Ask ZAP about the peer (address only) before sending our
            READY, as libzmq does for a NULL socket with a ``zap_domain``.

    .. versionadded:: 0.1
    """

    name: ClassVar[bytes] = b"NULL"

    def __init__(self, *, authenticate: bool = False) -> None:
        self._authenticate = authenticate
        self._ready: bytes | None = None  # our READY, held back until ZAP accepts
        self._peer: dict[str, bytes] | None = None
        self._sent_ready = False

    @property
    def waiting_for(self) -> str:
        """What the handshake waits for."""
        return "READY" if self._sent_ready else "authentication"

    def start(self, properties: Sequence[tuple[str, bytes]]) -> HandshakeStep:
        """Send READY with our metadata at once, or ask for authentication first.

        Args:
            properties: Our metadata.

        Returns:
            The READY command, or an authentication request.
        """
        ready = encode_command(READY, encode_properties(properties))
        if self._authenticate:
            self._ready = ready
            return HandshakeStep(authenticate=())
        self._sent_ready = True
        return HandshakeStep(commands=(ready,))

    def handle_command(self, name: bytes, data: bytes) -> HandshakeStep:
        """Accept the peer's READY, which completes the handshake once ours is sent.

        Args:
            name: Command name.
            data: Command data.

        Returns:
            The peer's properties, if our READY has gone out.

        Raises:
            HandshakeError: Anything but one well-formed READY.
        """
        if name != READY or self._peer is not None:
            shown = name.decode("ascii", "backslashreplace")
            raise HandshakeError(f"peer sent a {shown} command before READY (NULL handshake)")
        self._peer = decode_properties(data, "READY")
        if not self._sent_ready:
            return HandshakeStep()
        return HandshakeStep(peer_properties=self._peer)

    def auth_accepted(self) -> HandshakeStep:
        """Send the READY held back for authentication.

        Returns:
            READY, and the peer's properties if its READY already arrived.
        """
        if self._ready is None:
            return super().auth_accepted()
        ready, self._ready = self._ready, None
        self._sent_ready = True
        return HandshakeStep(commands=(ready,), peer_properties=self._peer)
