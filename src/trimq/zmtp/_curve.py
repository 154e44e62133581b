"""The CURVE mechanism (CurveZMQ, rfc 26): authenticated encryption with Curve25519.

Long-term keys: the client's C/c, the server's S/s; the client must know S in
advance. Each connection adds short-term keys C'/c' and S'/s'.

Client: HELLO (C', box to S) -> server: WELCOME (S' and a cookie, box to C')
-> client: INITIATE (cookie, C and a vouch binding C' to C, box to S')
-> server: READY (metadata). Then every frame in both directions travels in a
MESSAGE box with a strictly increasing 8-byte nonce.

The server keeps no per-connection state between HELLO and INITIATE: S'/s' and
C' travel inside the cookie, encrypted with a cookie key that all connections of
a socket share (:class:`CurveServerKeys`) and that is replaced every minute.
So a flood of HELLOs costs one Curve25519 operation each and nothing that
lasts. A cookie is accepted once: replaying a captured INITIATE on another
connection fails.

All cryptography is libsodium's, through PyNaCl's low-level bindings, because
the rfc fixes box formats that the high-level API does not expose (NaCl's
``crypto_box`` returns exactly the on-wire MAC + ciphertext).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import ClassVar, Final

from nacl.bindings import (
    crypto_box,
    crypto_box_afternm,
    crypto_box_beforenm,
    crypto_box_keypair,
    crypto_box_open,
    crypto_box_open_afternm,
    crypto_scalarmult_base,
    crypto_secretbox,
    crypto_secretbox_open,
)
from nacl.exceptions import CryptoError
from nacl.utils import random

from .._errors import HandshakeError, LocalProtocolError, RemoteProtocolError
from ._box import MESSAGE_HEADER, open_message, seal_message
from ._commands import READY, decode_properties, encode_command, encode_properties
from ._frames import FLAG_COMMAND, FLAG_MORE
from ._keys import curve_key
from ._mechanisms import HandshakeStep, Mechanism, refuse_two_servers

__all__ = ["CurveClientMechanism", "CurveServerKeys", "CurveServerMechanism"]

HELLO: Final = b"HELLO"
WELCOME: Final = b"WELCOME"
INITIATE: Final = b"INITIATE"

_HELLO_SIZE: Final = 194  # after the command name: version, padding, C', nonce, box
_WELCOME_SIZE: Final = 160
_COOKIE_SIZE: Final = 96
_INITIATE_MIN: Final = _COOKIE_SIZE + 8 + 16 + 32 + 16 + 80
_READY_MIN: Final = 8 + 16
_MESSAGE_MIN: Final = 8 + 8 + 16 + 1

_pack_nonce = struct.Struct(">Q").pack
_unpack_nonce = struct.Struct(">Q").unpack_from


def _key_pair(public: bytes | str | None, secret: bytes | str) -> tuple[bytes, bytes]:
    """A long-term key pair, raw: the public key derived if not given, else checked."""
    raw_secret = curve_key(secret, "curve_secretkey")
    derived = crypto_scalarmult_base(raw_secret)
    raw_public = derived if public is None else curve_key(public, "curve_publickey")
    if raw_public != derived:
        raise ValueError(
            "curve_publickey does not belong to curve_secretkey: "
            "load both from the same certificate"
        )
    return raw_public, raw_secret


class CurveServerKeys:
    """A CURVE server's key pair and cookie keys, shared by all its connections.

    Cookies are sealed with a key replaced every ``cookie_lifetime`` seconds
    (the previous key is still accepted, so a cookie lives one to two
    lifetimes). A cookie's client key is remembered once used, for as long as
    the cookie could be valid, so each cookie works exactly once.

    Args:
        public: The server's long-term public key (raw or Z85); derived from
            ``secret`` if ``None``.
        secret: The server's long-term secret key (raw or Z85).
        cookie_lifetime: Seconds between cookie-key changes.

    Raises:
        ValueError: A key is malformed, or ``public`` does not belong to ``secret``.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        public: bytes | str | None,
        secret: bytes | str,
        *,
        cookie_lifetime: float = 60.0,
    ) -> None:
        self.public, self.secret = _key_pair(public, secret)
        self._lifetime = cookie_lifetime
        self._keys: list[bytes] = [random(32)]  # newest first, at most two
        self._used: list[set[bytes]] = [set()]  # client short-term keys, per cookie key
        self._rotate_at: float | None = None

    def tick(self, now: float) -> None:
        """Replace the cookie key if its time has come.

        Call it with the current time (any monotonic clock, in seconds) before
        starting a connection; this module has no clock of its own.
        """
        if self._rotate_at is None:
            self._rotate_at = now + self._lifetime
        elif now >= self._rotate_at + self._lifetime:
            # Idle for two lifetimes: every cookie issued so far has expired.
            self._keys, self._used = [random(32)], [set()]
            self._rotate_at = now + self._lifetime
        elif now >= self._rotate_at:
            self._keys = [random(32), self._keys[0]]
            self._used = [set(), self._used[0]]
            self._rotate_at += self._lifetime

    @property
    def remembered_cookies(self) -> int:
        """How many used cookies are remembered (to refuse their replay)."""
        return sum(len(used) for used in self._used)

    def make_cookie(self, client_short: bytes, server_short_secret: bytes) -> bytes:
        """Seal C' and s' in a cookie, under the current cookie key."""
        nonce = random(16)
        box = crypto_secretbox(
            client_short + server_short_secret, b"COOKIE--" + nonce, self._keys[0]
        )
        return nonce + box

    def open_cookie(self, cookie: bytes) -> tuple[bytes, bytes, int]:
        """Unseal a cookie from INITIATE.

        Returns:
            C', s' and which cookie key opened it (for :meth:`use_cookie`).

        Raises:
            HandshakeError: The cookie was not made here, has expired, or was used.
        """
        nonce = b"COOKIE--" + cookie[:16]
        for generation, key in enumerate(self._keys):
            try:
                plain = crypto_secretbox_open(cookie[16:], nonce, key)
            except CryptoError:
                continue
            client_short = plain[:32]
            if client_short in self._used[generation]:
                raise HandshakeError("peer's INITIATE reuses a cookie: a replayed handshake")
            return client_short, plain[32:], generation
        raise HandshakeError(
            "peer's INITIATE carries a cookie this server did not issue, or one that expired"
        )

    def use_cookie(self, client_short: bytes, generation: int) -> None:
        """Remember that the cookie for C' completed a handshake."""
        self._used[generation].add(client_short)


class _CurveBase(Mechanism):
    """MESSAGE boxes, shared by both sides once the handshake is done."""

    name: ClassVar[bytes] = b"CURVE"
    transforms_frames: ClassVar[bool] = True
    frame_overhead: ClassVar[int] = _MESSAGE_MIN
    _send_prefix: ClassVar[bytes]
    _recv_prefix: ClassVar[bytes]

    def __init__(self) -> None:
        self._shared = b""  # crypto_box_beforenm of the short-term keys
        self._nonce = 1  # our next short nonce
        self._peer_nonce = 0  # the highest short nonce seen from the peer
        self._peer_key: bytes | None = None
        self._expect = b""

    @property
    def peer_key(self) -> bytes | None:
        """The peer's long-term public key, once the handshake proved it."""
        return self._peer_key

    @property
    def waiting_for(self) -> str:
        """What the handshake waits for."""
        return self._expect.decode() or "authentication"

    def _next_nonce(self) -> bytes:
        nonce = _pack_nonce(self._nonce)
        self._nonce += 1
        return nonce

    def _take_peer_nonce(self, raw: bytes) -> None:
        (nonce,) = _unpack_nonce(raw)
        if nonce <= self._peer_nonce:
            raise RemoteProtocolError(
                f"peer's CURVE nonce {nonce} does not exceed the previous one "
                f"({self._peer_nonce}): a replayed or reordered message"
            )
        self._peer_nonce = nonce

    def encode_frame(self, flags: int, body: bytes) -> tuple[int, bytes | bytearray]:
        """Seal one frame in a MESSAGE box.

        The box carries the MORE and COMMAND bits; the wire frame has no flags,
        as libzmq sends it (libzmq would read a wire COMMAND bit as part of the
        message).
        """
        inner = (1 if flags & FLAG_MORE else 0) | (2 if flags & FLAG_COMMAND else 0)
        nonce = _pack_nonce(self._nonce)
        self._nonce += 1
        return 0, seal_message(self._send_prefix, nonce, inner, body, self._shared)

    def decode_frame(self, flags: int, body: bytes) -> tuple[int, bytes]:
        """Open one MESSAGE box; the wire frame's own flags are ignored.

        Raises:
            RemoteProtocolError: Not a MESSAGE, too short, a nonce that does not
                increase, or a box that fails authentication.
        """
        if body[:8] != MESSAGE_HEADER:
            raise RemoteProtocolError(
                "peer sent a frame that is not a CURVE MESSAGE after the handshake"
            )
        if len(body) < _MESSAGE_MIN:
            raise RemoteProtocolError(f"peer sent a truncated CURVE MESSAGE ({len(body)} bytes)")
        (nonce,) = _unpack_nonce(body, 8)
        if nonce <= self._peer_nonce:
            raise RemoteProtocolError(
                f"peer's CURVE MESSAGE nonce {nonce} does not exceed the previous one "
                f"({self._peer_nonce}): a replayed or reordered message"
            )
        try:
            inner, frame = open_message(self._recv_prefix, body, self._shared)
        except CryptoError:
            raise RemoteProtocolError(
                "peer's CURVE MESSAGE failed authentication: corrupted or forged"
            ) from None
        # Only a genuine box may move the nonce forward: a forged one must not
        # make the peer's real messages look replayed.
        self._peer_nonce = nonce
        return (FLAG_MORE if inner & 1 else 0) | (FLAG_COMMAND if inner & 2 else 0), frame

    def _unexpected(self, name: bytes) -> HandshakeError:
        shown = name.decode("ascii", "backslashreplace")
        expected = self._expect.decode() or "nothing while authenticating"
        hint = " (both sides are CURVE clients?)" if name == HELLO else ""
        return HandshakeError(
            f"peer sent {shown} where the CURVE handshake expects {expected}{hint}"
        )


class CurveClientMechanism(_CurveBase):
    """The client side of CURVE.

    Args:
        public: Our long-term public key (raw or Z85).
        secret: Our long-term secret key (raw or Z85).
        server_key: The server's long-term public key (raw or Z85).

    Raises:
        ValueError: A key is malformed or ``public`` does not match ``secret``.

    .. versionadded:: 0.1
    """

    _send_prefix: ClassVar[bytes] = b"CurveZMQMESSAGEC"
    _recv_prefix: ClassVar[bytes] = b"CurveZMQMESSAGES"

    def __init__(self, public: bytes | str | None, secret: bytes | str, server_key: bytes | str):
        super().__init__()
        self._public, self._secret = _key_pair(public, secret)
        self._server = curve_key(server_key, "curve_serverkey")
        self._short_public = self._short_secret = b""
        self._properties: Sequence[tuple[str, bytes]] = ()

    @property
    def waiting_for(self) -> str:
        """What the handshake waits for."""
        if self._expect == WELCOME:
            return "WELCOME (is curve_serverkey the server's public key?)"
        return super().waiting_for

    def start(self, properties: Sequence[tuple[str, bytes]]) -> HandshakeStep:
        """Send HELLO with a fresh short-term key."""
        self._properties = properties
        self._short_public, self._short_secret = crypto_box_keypair()
        nonce = self._next_nonce()
        box = crypto_box(bytes(64), b"CurveZMQHELLO---" + nonce, self._server, self._short_secret)
        hello = b"\x01\x00" + bytes(72) + self._short_public + nonce + box
        self._expect = WELCOME
        return HandshakeStep(commands=(encode_command(HELLO, hello),))

    def handle_command(self, name: bytes, data: bytes) -> HandshakeStep:
        """Answer WELCOME with INITIATE; accept READY.

        Raises:
            HandshakeError: A command out of order, malformed, or failing its box.
        """
        if name != self._expect:
            raise self._unexpected(name)
        if name == WELCOME:
            return self._on_welcome(data)
        return self._on_ready(data)

    def _on_welcome(self, data: bytes) -> HandshakeStep:
        if len(data) != _WELCOME_SIZE:
            raise HandshakeError(f"peer sent a CURVE WELCOME of {len(data)} bytes, expected 160")
        try:
            plain = crypto_box_open(
                data[16:], b"WELCOME-" + data[:16], self._server, self._short_secret
            )
        except CryptoError:
            raise HandshakeError(
                "cannot open the server's WELCOME: curve_serverkey is not this server's public key"
            ) from None
        server_short, cookie = plain[:32], plain[32:]
        vouch_nonce = random(16)
        try:
            self._shared = crypto_box_beforenm(server_short, self._short_secret)
            vouch = crypto_box(
                self._short_public + self._server,
                b"VOUCH---" + vouch_nonce,
                server_short,
                self._secret,
            )
        except CryptoError:  # libsodium refuses low-order keys such as all zeros
            raise HandshakeError(
                "the server's WELCOME carries an unusable short-term key"
            ) from None
        plain = self._public + vouch_nonce + vouch + encode_properties(self._properties)
        nonce = self._next_nonce()
        box = crypto_box_afternm(plain, b"CurveZMQINITIATE" + nonce, self._shared)
        self._short_secret = b""  # only the precomputed key is needed from here on
        self._expect = READY
        return HandshakeStep(commands=(encode_command(INITIATE, cookie + nonce + box),))

    def _on_ready(self, data: bytes) -> HandshakeStep:
        if len(data) < _READY_MIN:
            raise HandshakeError(f"peer sent a truncated CURVE READY ({len(data)} bytes)")
        try:
            plain = crypto_box_open_afternm(data[8:], b"CurveZMQREADY---" + data[:8], self._shared)
        except CryptoError:
            raise HandshakeError("the server's READY failed authentication") from None
        self._take_peer_nonce(data[:8])
        self._expect = b""
        self._peer_key = self._server
        return HandshakeStep(peer_properties=decode_properties(plain, "READY"))


class CurveServerMechanism(_CurveBase):
    """The server side of CURVE for one connection.

    Args:
        keys: The socket's :class:`CurveServerKeys`, shared by its connections.

    .. versionadded:: 0.1
    """

    as_server: bool = True
    _send_prefix: ClassVar[bytes] = b"CurveZMQMESSAGES"
    _recv_prefix: ClassVar[bytes] = b"CurveZMQMESSAGEC"

    def __init__(self, keys: CurveServerKeys) -> None:
        super().__init__()
        self._keys = keys
        self._properties: Sequence[tuple[str, bytes]] = ()
        self._peer_properties: dict[str, bytes] | None = None

    def check_peer_greeting(self, *, peer_as_server: bool) -> None:
        """Refuse a peer that claims to be a server too."""
        refuse_two_servers(self, peer_as_server=peer_as_server)

    def start(self, properties: Sequence[tuple[str, bytes]]) -> HandshakeStep:
        """Wait for the client's HELLO."""
        self._properties = properties
        self._expect = HELLO
        return HandshakeStep()

    def handle_command(self, name: bytes, data: bytes) -> HandshakeStep:
        """Answer HELLO with WELCOME; check INITIATE and ask ZAP about the client.

        Raises:
            HandshakeError: A command out of order, malformed, or failing its box.
        """
        if name != self._expect:
            raise self._unexpected(name)
        if name == HELLO:
            return self._on_hello(data)
        return self._on_initiate(data)

    def _on_hello(self, data: bytes) -> HandshakeStep:
        if len(data) != _HELLO_SIZE:
            raise HandshakeError(f"peer sent a CURVE HELLO of {len(data)} bytes, expected 194")
        if data[:2] != b"\x01\x00":
            raise HandshakeError(f"peer speaks CURVE version {data[0]}.{data[1]}, not 1.0")
        client_short, nonce, box = data[74:106], data[106:114], data[114:]
        try:
            crypto_box_open(box, b"CurveZMQHELLO---" + nonce, client_short, self._keys.secret)
        except CryptoError:
            raise HandshakeError(
                "cannot open the client's HELLO: its curve_serverkey is not our public key"
            ) from None
        server_short, server_short_secret = crypto_box_keypair()
        cookie = self._keys.make_cookie(client_short, server_short_secret)
        welcome_nonce = random(16)
        welcome = welcome_nonce + crypto_box(
            server_short + cookie, b"WELCOME-" + welcome_nonce, client_short, self._keys.secret
        )
        # Nothing of this exchange stays with the connection: C' and s' are in
        # the cookie, which comes back in INITIATE.
        self._expect = INITIATE
        return HandshakeStep(commands=(encode_command(WELCOME, welcome),))

    def _on_initiate(self, data: bytes) -> HandshakeStep:
        if len(data) < _INITIATE_MIN:
            raise HandshakeError(f"peer sent a truncated CURVE INITIATE ({len(data)} bytes)")
        client_short, server_short_secret, generation = self._keys.open_cookie(data[:96])
        raw_nonce = data[96:104]
        try:
            shared = crypto_box_beforenm(client_short, server_short_secret)
            plain = crypto_box_open_afternm(data[104:], b"CurveZMQINITIATE" + raw_nonce, shared)
        except CryptoError:
            raise HandshakeError("peer's INITIATE failed authentication") from None
        client, vouch_nonce, vouch = plain[:32], plain[32:48], plain[48:128]
        try:
            vouched = crypto_box_open(vouch, b"VOUCH---" + vouch_nonce, client, server_short_secret)
        except CryptoError:
            raise HandshakeError(
                "peer's INITIATE vouch does not verify: it does not hold the secret key "
                "of the public key it claims"
            ) from None
        if vouched != client_short + self._keys.public:
            raise HandshakeError("peer's INITIATE vouches for a different connection or server")
        properties = decode_properties(plain[128:], "INITIATE")
        self._keys.use_cookie(client_short, generation)
        self._shared = shared
        self._take_peer_nonce(raw_nonce)
        self._peer_key = client
        self._peer_properties = properties
        self._expect = b""
        return HandshakeStep(authenticate=(client,))

    def auth_accepted(self) -> HandshakeStep:
        """Send READY once ZAP accepted the client's key."""
        if self._peer_properties is None:
            raise LocalProtocolError("CURVE server asked for no authentication")
        nonce = self._next_nonce()
        box = crypto_box_afternm(
            encode_properties(self._properties), b"CurveZMQREADY---" + nonce, self._shared
        )
        return HandshakeStep(
            commands=(encode_command(READY, nonce + box),), peer_properties=self._peer_properties
        )
