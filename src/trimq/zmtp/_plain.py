"""The PLAIN mechanism (rfc 24): a username and password, in clear text.

Client: HELLO (credentials) -> server: WELCOME -> client: INITIATE (metadata)
-> server: READY (metadata). The server checks the credentials through ZAP
before it answers HELLO. PLAIN proves nothing on an untrusted network (the
password travels in the clear): use it on loopback or inside a VPN, CURVE elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Final

from .._errors import HandshakeError, LocalProtocolError
from ._commands import READY, decode_properties, encode_command, encode_properties
from ._mechanisms import HandshakeStep, Mechanism, refuse_two_servers

__all__ = ["PlainClientMechanism", "PlainServerMechanism"]

HELLO: Final = b"HELLO"
WELCOME: Final = b"WELCOME"
INITIATE: Final = b"INITIATE"


def _unexpected(name: bytes, expected: str) -> HandshakeError:
    shown = name.decode("ascii", "backslashreplace")
    hint = " (both sides are PLAIN clients?)" if name == HELLO else ""
    return HandshakeError(f"peer sent {shown} where the PLAIN handshake expects {expected}{hint}")


def _check_credential(value: bytes, what: str) -> bytes:
    if len(value) > 255:
        raise LocalProtocolError(f"PLAIN {what} is {len(value)} bytes; at most 255 are allowed")
    return bytes(value)


class PlainClientMechanism(Mechanism):
    """The client side of PLAIN: sends a username and password.

    Args:
        username: At most 255 bytes.
        password: At most 255 bytes.

    Raises:
        LocalProtocolError: A credential is too long.

    .. versionadded:: 0.1
    """

    name: ClassVar[bytes] = b"PLAIN"

    def __init__(self, username: bytes, password: bytes) -> None:
        self._username = _check_credential(username, "username")
        self._password = _check_credential(password, "password")
        self._properties: Sequence[tuple[str, bytes]] = ()
        self._expect = WELCOME

    @property
    def waiting_for(self) -> str:
        """What the handshake waits for."""
        if self._expect == WELCOME:
            return "WELCOME (the server may have refused our username and password)"
        return self._expect.decode()

    def start(self, properties: Sequence[tuple[str, bytes]]) -> HandshakeStep:
        """Send HELLO with the credentials."""
        self._properties = properties
        hello = (
            bytes((len(self._username),))
            + self._username
            + bytes((len(self._password),))
            + self._password
        )
        return HandshakeStep(commands=(encode_command(HELLO, hello),))

    def handle_command(self, name: bytes, data: bytes) -> HandshakeStep:
        """Answer WELCOME with INITIATE; accept READY.

        Raises:
            HandshakeError: Any other command, or a malformed one.
        """
        if name != self._expect:
            raise _unexpected(name, self._expect.decode())
        if name == WELCOME:
            if data:
                raise HandshakeError(
                    f"peer sent a WELCOME with {len(data)} bytes; it must be empty"
                )
            self._expect = READY
            initiate = encode_command(INITIATE, encode_properties(self._properties))
            return HandshakeStep(commands=(initiate,))
        self._expect = b""
        return HandshakeStep(peer_properties=decode_properties(data, "READY"))


class PlainServerMechanism(Mechanism):
    """The server side of PLAIN: has ZAP check the client's credentials.

    .. versionadded:: 0.1
    """

    name: ClassVar[bytes] = b"PLAIN"
    as_server: bool = True

    def __init__(self) -> None:
        self._properties: Sequence[tuple[str, bytes]] = ()
        self._expect = HELLO

    @property
    def waiting_for(self) -> str:
        """What the handshake waits for."""
        return self._expect.decode() or "authentication"

    def check_peer_greeting(self, *, peer_as_server: bool) -> None:
        """Refuse a peer that claims to be a server too."""
        refuse_two_servers(self, peer_as_server=peer_as_server)

    def start(self, properties: Sequence[tuple[str, bytes]]) -> HandshakeStep:
        """Wait for the client's HELLO."""
        self._properties = properties
        return HandshakeStep()

    def handle_command(self, name: bytes, data: bytes) -> HandshakeStep:
        """Take HELLO's credentials to ZAP; answer INITIATE with READY.

        Raises:
            HandshakeError: A command out of order or malformed.
        """
        if not self._expect or name != self._expect:
            raise _unexpected(name, self._expect.decode() or "nothing while authenticating")
        if name == HELLO:
            self._expect = b""
            return HandshakeStep(authenticate=_parse_hello(data))
        self._expect = b""
        peer = decode_properties(data, "INITIATE")
        ready = encode_command(READY, encode_properties(self._properties))
        return HandshakeStep(commands=(ready,), peer_properties=peer)

    def auth_accepted(self) -> HandshakeStep:
        """Welcome the client once ZAP accepted it."""
        self._expect = INITIATE
        return HandshakeStep(commands=(encode_command(WELCOME),))


def _parse_hello(data: bytes) -> tuple[bytes, bytes]:
    # u8 length + username, u8 length + password, nothing after.
    if not data:
        raise HandshakeError("peer sent a PLAIN HELLO without credentials")
    user_end = 1 + data[0]
    if user_end >= len(data):
        raise HandshakeError("peer sent a malformed PLAIN HELLO: username is truncated")
    pass_end = user_end + 1 + data[user_end]
    if pass_end != len(data):
        raise HandshakeError(
            "peer sent a malformed PLAIN HELLO: password length does not match the command"
        )
    return data[1:user_end], data[user_end + 1 : pass_end]
