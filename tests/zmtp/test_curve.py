"""The CURVE mechanism (rfc 26) between two sans-I/O connections, and hostile CURVE peers.

Good handshakes run whole, one byte at a time and in random splits, and the
wire is taken apart to check the rfc's layout. Hostile input is made either by
corrupting what a real peer sent or by :class:`RawClient`, a hand-written
CURVE client that can forge what :class:`CurveClientMechanism` never sends.
Every refusal must be a :class:`RemoteProtocolError` that the connection keeps
raising afterwards.
"""

from __future__ import annotations

import gc
import os
import tracemalloc
from collections.abc import Callable, Iterable
from typing import TypeAlias

import pytest
from nacl.bindings import (
    crypto_box,
    crypto_box_afternm,
    crypto_box_beforenm,
    crypto_box_keypair,
    crypto_box_open,
)

from trimq._errors import AuthenticationError, HandshakeError, RemoteProtocolError
from trimq.zmtp import (
    AuthRequest,
    Cancel,
    CurveClientMechanism,
    CurveServerKeys,
    CurveServerMechanism,
    HandshakeComplete,
    Ping,
    Pong,
    SocketType,
    Subscribe,
    ZmtpConnection,
    curve_keypair,
    encode_greeting,
    z85_decode,
)

from ._security import SPLITS, Recorder, assert_dead, chop, encoded, feed, handshake
from .test_zmtp_framing import command, frame, prop

S = SocketType

SERVER_PUBLIC, SERVER_SECRET = curve_keypair()
CLIENT_PUBLIC, CLIENT_SECRET = curve_keypair()
OTHER_PUBLIC, OTHER_SECRET = curve_keypair()
SERVER_RAW, SERVER_SECRET_RAW = z85_decode(SERVER_PUBLIC), z85_decode(SERVER_SECRET)
CLIENT_RAW, CLIENT_SECRET_RAW = z85_decode(CLIENT_PUBLIC), z85_decode(CLIENT_SECRET)
OTHER_RAW, OTHER_SECRET_RAW = z85_decode(OTHER_PUBLIC), z85_decode(OTHER_SECRET)

# curve_client's 3-byte identity shows in the padding, as in libzmq.
CLIENT_GREETING = encode_greeting(b"CURVE", as_server=False, identity_size=3)
SERVER_GREETING = encode_greeting(b"CURVE", as_server=True)


# ------------------------------------------------------------ wire helpers


def frames_of(wire: bytes | bytearray) -> list[tuple[int, bytes]]:
    """Split complete frames into (flags without LONG, body); nothing may be left over."""
    data = bytes(wire)
    frames = []
    p = 0
    while p < len(data):
        flags = data[p]
        if flags & 2:
            size = int.from_bytes(data[p + 1 : p + 9], "big")
            start = p + 9
        else:
            size = data[p + 1]
            start = p + 2
        assert start + size <= len(data), "incomplete frame"
        frames.append((flags & ~2, data[start : start + size]))
        p = start + size
    return frames


def only_frame(wire: bytes) -> bytes:
    [(_, body)] = frames_of(wire)
    return body


def nonce(raw: bytes) -> int:
    assert len(raw) == 8
    return int.from_bytes(raw, "big")


def flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


# ---------------------------------------------------------- the handshake


def curve_client(
    client_type: SocketType = S.DEALER,
    server_key: bytes = SERVER_PUBLIC,
    metadata: dict[str, bytes] | None = None,
) -> ZmtpConnection:
    return ZmtpConnection(
        client_type,
        identity=b"cli",  # sent only by DEALER and REQ
        mechanism=CurveClientMechanism(CLIENT_PUBLIC, CLIENT_SECRET, server_key),
        metadata=metadata,
    )


def curve_server(
    keys: CurveServerKeys | None = None, server_type: SocketType = S.ROUTER
) -> ZmtpConnection:
    keys = CurveServerKeys(SERVER_RAW, SERVER_SECRET_RAW) if keys is None else keys
    return ZmtpConnection(server_type, mechanism=CurveServerMechanism(keys))


def connected(
    client_type: SocketType = S.DEALER, server_type: SocketType = S.ROUTER
) -> tuple[ZmtpConnection, ZmtpConnection]:
    client, server = curve_client(client_type), curve_server(server_type=server_type)
    handshake(client, server)
    assert client.handshake_complete
    assert server.handshake_complete
    return client, server


def hello_from(client: ZmtpConnection) -> bytes:
    """The client's greeting and HELLO frame (it has seen a CURVE server's greeting)."""
    greeting = client.data_to_send()
    assert client.receive_data(SERVER_GREETING) == []
    return greeting + client.data_to_send()


def server_after_hello(
    keys: CurveServerKeys | None = None,
) -> tuple[ZmtpConnection, ZmtpConnection]:
    """A client that sent HELLO, and a server that answered it (WELCOME not yet delivered)."""
    client, server = curve_client(), curve_server(keys)
    server.data_to_send()
    assert server.receive_data(hello_from(client)) == []
    return client, server


def initiate_from(client: ZmtpConnection, server: ZmtpConnection) -> bytes:
    """Deliver the server's WELCOME to the client; return the client's INITIATE frame."""
    assert client.receive_data(server.data_to_send()) == []
    initiate = client.data_to_send()
    assert only_frame(initiate).startswith(b"\x08INITIATE")
    return initiate


class RawClient:
    """A hand-made CURVE client built straight from rfc 26, with knobs to forge
    each part of HELLO and INITIATE."""

    def __init__(self, server: bytes = SERVER_RAW) -> None:
        self.server = server
        self.short_public, self.short_secret = crypto_box_keypair()
        self.shared = b""

    def hello(self, *, short_public: bytes | None = None) -> bytes:
        raw_nonce = (1).to_bytes(8, "big")
        box = crypto_box(bytes(64), b"CurveZMQHELLO---" + raw_nonce, self.server, self.short_secret)
        short = self.short_public if short_public is None else short_public
        return CLIENT_GREETING + command(
            b"HELLO", b"\x01\x00" + bytes(72) + short + raw_nonce + box
        )

    def initiate(
        self,
        welcome: bytes,
        *,
        claimed: bytes = CLIENT_RAW,
        vouch_secret: bytes = CLIENT_SECRET_RAW,
        vouched: bytes | None = None,
        corrupt_vouch: bool = False,
        metadata: bytes = prop(b"Socket-Type", b"DEALER"),
    ) -> bytes:
        data = only_frame(welcome)[8:]
        plain = crypto_box_open(data[16:], b"WELCOME-" + data[:16], self.server, self.short_secret)
        server_short, cookie = plain[:32], plain[32:]
        self.shared = crypto_box_beforenm(server_short, self.short_secret)
        vouch_nonce = os.urandom(16)
        vouched = self.short_public + self.server if vouched is None else vouched
        vouch = crypto_box(vouched, b"VOUCH---" + vouch_nonce, server_short, vouch_secret)
        if corrupt_vouch:
            vouch = flip(vouch, 40)
        raw_nonce = (2).to_bytes(8, "big")
        box = crypto_box_afternm(
            claimed + vouch_nonce + vouch + metadata, b"CurveZMQINITIATE" + raw_nonce, self.shared
        )
        return command(b"INITIATE", cookie + raw_nonce + box)


def raw_server_after_hello(raw: RawClient) -> tuple[ZmtpConnection, bytes]:
    server = curve_server()
    server.data_to_send()
    assert server.receive_data(raw.hello()) == []
    return server, server.data_to_send()


@pytest.mark.parametrize("how", SPLITS)
def test_handshake(how: str) -> None:
    client, server = curve_client(), curve_server()
    zap = Recorder(user_id=b"alice")
    t = handshake(client, server, how, zap)

    assert zap.requests == [AuthRequest(b"CURVE", (CLIENT_RAW,))]
    assert t.server_events == [
        zap.requests[0],
        HandshakeComplete(
            peer_socket_type=S.DEALER,
            peer_identity=b"cli",
            peer_metadata={"Socket-Type": b"DEALER", "Identity": b"cli", "User-Id": b"alice"},
            peer_minor=1,
            mechanism=b"CURVE",
            user_id=b"alice",
            peer_key=CLIENT_RAW,
        ),
    ]
    assert t.client_events == [
        HandshakeComplete(
            peer_socket_type=S.ROUTER,
            peer_identity=b"",
            peer_metadata={"Socket-Type": b"ROUTER", "Identity": b""},
            peer_minor=1,
            mechanism=b"CURVE",
            user_id=b"",
            peer_key=SERVER_RAW,
        )
    ]
    assert server.mechanism.peer_key == CLIENT_RAW
    assert client.mechanism.peer_key == SERVER_RAW

    messages = [[b"hello"], [b"a", b"", bytes(300)], [b""]]
    assert feed(server, chop(encoded(client, messages), how)) == messages
    assert feed(client, chop(encoded(server, [[b"cli", b"reply"]]), how)) == [[b"cli", b"reply"]]


def test_keys_accepted_raw_or_z85() -> None:
    client = ZmtpConnection(
        S.PUSH, mechanism=CurveClientMechanism(CLIENT_RAW, CLIENT_SECRET_RAW, SERVER_RAW)
    )
    server = ZmtpConnection(
        S.PULL, mechanism=CurveServerMechanism(CurveServerKeys(SERVER_PUBLIC, SERVER_SECRET))
    )
    t = handshake(client, server)
    assert isinstance(t.server_events[-1], HandshakeComplete)
    assert t.server_events[-1].peer_key == CLIENT_RAW
    assert server.receive_data(encoded(client, [[b"x"]])) == [[b"x"]]


def test_keys_must_match() -> None:
    with pytest.raises(ValueError, match="does not belong"):
        CurveClientMechanism(OTHER_PUBLIC, CLIENT_SECRET, SERVER_PUBLIC)
    with pytest.raises(ValueError, match="does not belong"):
        CurveServerKeys(OTHER_PUBLIC, SERVER_SECRET)
    assert CurveServerKeys(None, SERVER_SECRET).public == SERVER_RAW


def test_wire_layout() -> None:
    client, server = curve_client(), curve_server()
    t = handshake(client, server)
    assert t.client_wire[:64] == CLIENT_GREETING
    assert t.server_wire[:64] == SERVER_GREETING
    [(hello_flags, hello), (initiate_flags, initiate)] = frames_of(t.client_wire[64:])
    [(welcome_flags, welcome), (ready_flags, ready)] = frames_of(t.server_wire[64:])
    assert hello_flags == initiate_flags == welcome_flags == ready_flags == 4

    assert len(hello) == 200
    assert hello[:6] == b"\x05HELLO"
    assert hello[6:8] == b"\x01\x00"  # version 1.0
    assert hello[8:80] == bytes(72)  # anti-amplification padding
    assert hello[80:112] not in (CLIENT_RAW, SERVER_RAW)  # C', a fresh key
    assert nonce(hello[112:120]) == 1

    assert len(welcome) == 168
    assert welcome[:8] == b"\x07WELCOME"

    client_metadata = prop(b"Socket-Type", b"DEALER") + prop(b"Identity", b"cli")
    assert len(initiate) == 257 + len(client_metadata)
    assert initiate[:9] == b"\x08INITIATE"
    assert nonce(initiate[105:113]) == 2

    server_metadata = prop(b"Socket-Type", b"ROUTER") + prop(b"Identity", b"")
    assert len(ready) == 6 + 8 + 16 + len(server_metadata)
    assert ready[:6] == b"\x05READY"
    assert nonce(ready[6:14]) == 1


def test_message_frames_and_nonces() -> None:
    client, server = connected()
    wire = encoded(client, [[b"a", b"b"], [b"c"]])
    client.send_ping(1.5, b"ctx")
    wire += client.data_to_send()
    frames = frames_of(wire)
    assert [flags for flags, _ in frames] == [0, 0, 0, 0]  # MORE/COMMAND travel inside the box
    assert all(body.startswith(b"\x07MESSAGE") for _, body in frames)
    assert [nonce(body[8:16]) for _, body in frames] == [3, 4, 5, 6]
    assert b"PING" not in wire
    assert server.receive_data(wire) == [[b"a", b"b"], [b"c"], Ping(1.5, b"ctx")]

    # The PONG owed goes first, encrypted too; the server's nonces start at 2.
    reply = encoded(server, [[b"cli", b"x"]])
    frames = frames_of(reply)
    assert all(flags == 0 and body.startswith(b"\x07MESSAGE") for flags, body in frames)
    assert [nonce(body[8:16]) for _, body in frames] == [2, 3, 4]
    assert b"PONG" not in reply
    assert client.receive_data(reply) == [Pong(b"ctx"), [b"cli", b"x"]]


@pytest.mark.parametrize("how", ["whole", "random0", "random1"])
def test_large_and_empty_frames(how: str) -> None:
    client, server = connected()
    big = os.urandom(1 << 20)
    messages = [[b""], [b"", b""], [b"head", big, b""], [b"x" * 255, b"y" * 256]]
    wire = encoded(client, messages)
    assert big[:64] not in wire
    assert feed(server, chop(wire, how, most=70_000)) == messages
    assert feed(client, chop(encoded(server, [[big]]), how, most=70_000)) == [[big]]


@pytest.mark.parametrize(("sub_type", "pub_type"), [(S.SUB, S.PUB), (S.XSUB, S.XPUB)])
def test_subscriptions_from_client(sub_type: SocketType, pub_type: SocketType) -> None:
    sub, pub = connected(sub_type, pub_type)
    wire = encoded(sub, [[b"\x01news"], [b"\x00news"], [b"\x01"]])
    assert b"SUBSCRIBE" not in wire
    assert b"news" not in wire
    assert all(body.startswith(b"\x07MESSAGE") for _, body in frames_of(wire))
    assert pub.receive_data(wire) == [Subscribe(b"news"), Cancel(b"news"), Subscribe(b"")]


def test_subscriptions_from_server() -> None:
    pub, sub = connected(S.PUB, S.SUB)
    wire = encoded(sub, [[b"\x01weather"]])
    assert b"weather" not in wire
    assert pub.receive_data(wire) == [Subscribe(b"weather")]


def test_plaintext_never_on_the_wire() -> None:
    secret = b"the eagle lands at midnight"
    client = curve_client(metadata={"X-Secret": b"metadata-secret"})
    server = curve_server()
    t = handshake(client, server)
    assert isinstance(t.server_events[-1], HandshakeComplete)
    assert t.server_events[-1].peer_metadata["X-Secret"] == b"metadata-secret"
    wire = bytes(t.client_wire) + bytes(t.server_wire)
    wire += encoded(client, [[secret, secret]]) + encoded(server, [[b"cli", secret]])
    for visible in (secret, b"metadata-secret", b"Socket-Type", b"DEALER", b"Identity"):
        assert visible not in wire
    assert CLIENT_RAW not in wire  # the long-term client key travels only inside INITIATE


# -------------------------------------------------- refusals and ERROR


def test_refusal_sends_error_in_the_clear() -> None:
    client, server = curve_client(), curve_server()
    with pytest.raises(AuthenticationError) as refused:
        handshake(client, server, "whole", Recorder(status=400))
    assert refused.value.status_code == 400
    error = server.data_to_send()
    assert error == command(b"ERROR", b"\x03400")
    with pytest.raises(AuthenticationError, match="ERROR '400'") as by_peer:
        client.receive_data(error)
    assert by_peer.value.by_peer
    assert by_peer.value.status_code == 400


def test_error_after_handshake_is_plaintext() -> None:
    client, server = connected()
    server.send_error("going away")
    error = server.data_to_send()
    assert error == command(b"ERROR", b"\x0agoing away")
    assert_dead(client, error, HandshakeError, "peer sent ERROR: going away")


def test_two_curve_servers_detected() -> None:
    assert_dead(curve_server(), SERVER_GREETING, HandshakeError, "both sides are CURVE servers")


def test_two_curve_clients_detected() -> None:
    a, b = curve_client(), curve_client()
    a_greeting, b_greeting = a.data_to_send(), b.data_to_send()
    assert a.receive_data(b_greeting) == []
    assert_dead(b, a_greeting + a.data_to_send(), HandshakeError, "both sides are CURVE clients")


# ------------------------------------------------------ hostile HELLO


def real_hello() -> bytes:
    hello = hello_from(curve_client())
    assert hello[:64] == CLIENT_GREETING
    return only_frame(hello[64:])


@pytest.mark.parametrize("size", [0, 1, 199, 201, 400])
def test_hello_of_wrong_size(size: int) -> None:
    body = real_hello()
    body = (body + bytes(size))[:size]
    expected = size - 6
    assert_dead(
        curve_server(),
        CLIENT_GREETING + frame(body, command=True),
        RemoteProtocolError,
        f"HELLO of {expected} bytes, expected 194" if size >= 6 else "malformed|empty command",
    )


@pytest.mark.parametrize("version", [b"\x02\x00", b"\x01\x01", b"\x00\x00"])
def test_hello_with_wrong_version(version: bytes) -> None:
    body = real_hello()
    body = body[:6] + version + body[8:]
    assert_dead(
        curve_server(),
        CLIENT_GREETING + frame(body, command=True),
        HandshakeError,
        f"CURVE version {version[0]}.{version[1]}, not 1.0",
    )


@pytest.mark.parametrize("how", ["whole", "bytewise"])
def test_hello_for_another_server_key(how: str) -> None:
    client = curve_client(server_key=OTHER_PUBLIC)
    server = curve_server()
    with pytest.raises(HandshakeError, match="curve_serverkey is not our public key") as refused:
        feed(server, chop(hello_from(client), how))
    assert server.data_to_send() == SERVER_GREETING  # no WELCOME
    assert server.error is refused.value
    assert "curve_serverkey" in client.waiting_for


@pytest.mark.parametrize(
    "mangle",
    [
        lambda body: body[:120] + os.urandom(80),  # a random box
        lambda body: flip(body, 150),  # a corrupted box
        lambda body: flip(body, 115),  # a different nonce
        lambda body: body[:80] + os.urandom(32) + body[112:],  # another C'
        lambda body: body[:80] + bytes(32) + body[112:],  # a low-order C'
    ],
    ids=["random-box", "corrupted-box", "changed-nonce", "other-short-key", "zero-short-key"],
)
def test_bogus_hello_refused(mangle: Callable[[bytes], bytes]) -> None:
    keys = CurveServerKeys(SERVER_RAW, SERVER_SECRET_RAW)
    server = curve_server(keys)
    data = CLIENT_GREETING + frame(mangle(real_hello()), command=True)
    assert_dead(server, data, HandshakeError, "cannot open the client's HELLO")
    assert keys.remembered_cookies == 0


# ---------------------------------------------------- hostile WELCOME


def test_welcome_from_a_server_with_another_key() -> None:
    client = curve_client()
    hello = only_frame(hello_from(client)[64:])
    client_short = hello[80:112]
    server_short, _ = crypto_box_keypair()
    welcome_nonce = os.urandom(16)
    box = crypto_box(
        server_short + os.urandom(96), b"WELCOME-" + welcome_nonce, client_short, OTHER_SECRET_RAW
    )
    assert_dead(
        client,
        command(b"WELCOME", welcome_nonce + box),
        HandshakeError,
        "cannot open the server's WELCOME: curve_serverkey is not this server's public key",
    )


def test_welcome_from_the_other_server_when_configured_wrongly() -> None:
    # The client expects OTHER; the real server refuses its HELLO, and a
    # WELCOME that the real server made for someone else is useless too.
    client = curve_client(server_key=OTHER_PUBLIC)
    hello_from(client)
    _, server = server_after_hello()
    assert_dead(client, server.data_to_send(), HandshakeError, "cannot open the server's WELCOME")


@pytest.mark.parametrize(
    "mangle",
    [lambda w: w[:-1], lambda w: w + b"\x00", lambda w: flip(w, 100), lambda w: flip(w, 3)],
    ids=["short", "long", "corrupted-box", "corrupted-nonce"],
)
def test_bad_welcome_refused(mangle: Callable[[bytes], bytes]) -> None:
    client, server = server_after_hello()
    welcome = only_frame(server.data_to_send())
    body = welcome[:8] + mangle(welcome[8:])
    assert_dead(client, frame(body, command=True), HandshakeError, "WELCOME")


def test_welcome_with_a_low_order_server_short_key() -> None:
    # A server holding the right long-term key but sending an all-zero S' (a
    # low-order point: no shared secret can come of it) must be refused with a
    # HandshakeError like any other bad WELCOME, not with libsodium's error.
    client = curve_client()
    client_short = only_frame(hello_from(client)[64:])[80:112]
    welcome_nonce = os.urandom(16)
    box = crypto_box(
        bytes(32) + os.urandom(96), b"WELCOME-" + welcome_nonce, client_short, SERVER_SECRET_RAW
    )
    assert_dead(client, command(b"WELCOME", welcome_nonce + box), HandshakeError, "WELCOME")


# ---------------------------------------------------- hostile INITIATE


def test_raw_client_is_accepted() -> None:
    # RawClient must be right for the forgeries below to mean anything.
    raw = RawClient()
    server, welcome = raw_server_after_hello(raw)
    events = server.receive_data(raw.initiate(welcome))
    assert events == [AuthRequest(b"CURVE", (CLIENT_RAW,))]
    [complete] = server.auth_result(200)
    assert isinstance(complete, HandshakeComplete)
    assert complete.peer_key == CLIENT_RAW


Forge: TypeAlias = Callable[[RawClient, bytes], bytes]
FORGERIES: list[tuple[str, Forge, str]] = [
    ("corrupted-vouch", lambda r, w: r.initiate(w, corrupt_vouch=True), "vouch does not verify"),
    (
        "vouch-by-another-key",
        lambda r, w: r.initiate(w, vouch_secret=OTHER_SECRET_RAW),
        "vouch does not verify",
    ),
    ("claims-another-key", lambda r, w: r.initiate(w, claimed=OTHER_RAW), "vouch does not verify"),
    ("claims-zero-key", lambda r, w: r.initiate(w, claimed=bytes(32)), "vouch does not verify"),
    (
        "vouch-for-another-server",
        lambda r, w: r.initiate(w, vouched=r.short_public + OTHER_RAW),
        "vouches for a different connection or server",
    ),
    (
        "vouch-for-another-connection",
        lambda r, w: r.initiate(w, vouched=crypto_box_keypair()[0] + SERVER_RAW),
        "vouches for a different connection or server",
    ),
    (
        "bad-metadata",
        lambda r, w: r.initiate(w, metadata=b"\x0bSocket-Type\x00\x00"),
        "INITIATE: property at offset 0 is truncated",
    ),
]


@pytest.mark.parametrize(
    ("forge", "match"), [f[1:] for f in FORGERIES], ids=[f[0] for f in FORGERIES]
)
def test_forged_initiate_refused(forge: Forge, match: str) -> None:
    raw = RawClient()
    server, welcome = raw_server_after_hello(raw)
    assert_dead(server, forge(raw, welcome), HandshakeError, match)


@pytest.mark.parametrize(
    ("metadata", "match"),
    [(prop(b"Socket-Type", b"PUB"), "ROUTER cannot talk to PUB"), (b"", "no Socket-Type")],
    ids=["incompatible-type", "no-socket-type"],
)
def test_peer_refused_after_the_verdict_stays_dead(metadata: bytes, match: str) -> None:
    # The Socket-Type is checked once the authenticator has accepted the key,
    # so the HandshakeError comes from auth_result(); the connection must be
    # dead afterwards all the same, as after any RemoteProtocolError.
    raw = RawClient()
    server, welcome = raw_server_after_hello(raw)
    events = server.receive_data(raw.initiate(welcome, metadata=metadata))
    assert events == [AuthRequest(b"CURVE", (CLIENT_RAW,))]
    with pytest.raises(HandshakeError, match=match) as refused:
        server.auth_result(200)
    assert not server.handshake_complete
    assert server.error is refused.value, "the refused connection is not marked dead"
    with pytest.raises(HandshakeError) as again:
        server.receive_data(b"\x00\x01x")
    assert again.value is refused.value


@pytest.mark.parametrize(
    ("size", "match"),
    [(0, "truncated CURVE INITIATE \\(0 bytes\\)"), (247, "truncated CURVE INITIATE \\(247"),
     (248, "INITIATE failed authentication"), (-1, "INITIATE failed authentication")],
)  # fmt: skip
def test_truncated_initiate(size: int, match: str) -> None:
    client, server = server_after_hello()
    body = only_frame(initiate_from(client, server))
    data = body[9:][:size]
    assert_dead(server, command(b"INITIATE", data), HandshakeError, match)


@pytest.mark.parametrize(
    ("index", "match"),
    [
        (5, "cookie this server did not issue"),  # cookie nonce
        (60, "cookie this server did not issue"),  # cookie box
        (100, "INITIATE failed authentication"),  # nonce
        (200, "INITIATE failed authentication"),  # box
        (-1, "INITIATE failed authentication"),  # last byte of the box
    ],
)
def test_corrupted_initiate(index: int, match: str) -> None:
    client, server = server_after_hello()
    data = only_frame(initiate_from(client, server))[9:]
    assert_dead(server, command(b"INITIATE", flip(data, index)), HandshakeError, match)


def test_replayed_initiate_refused() -> None:
    keys = CurveServerKeys(SERVER_RAW, SERVER_SECRET_RAW)
    client, server = curve_client(), curve_server(keys)
    t = handshake(client, server)
    assert isinstance(t.server_events[-1], HandshakeComplete)
    assert keys.remembered_cookies == 1
    [_, (_, captured_initiate)] = frames_of(t.client_wire[64:])

    # A fresh connection of the same server: a valid HELLO, then the captured INITIATE.
    _, replay = server_after_hello(keys)
    replay.data_to_send()
    assert_dead(replay, frame(captured_initiate, command=True), HandshakeError, "reuses a cookie")
    assert keys.remembered_cookies == 1


def test_initiate_twice_on_one_connection() -> None:
    client, server = server_after_hello()
    initiate = initiate_from(client, server)
    assert server.receive_data(initiate) == [AuthRequest(b"CURVE", (CLIENT_RAW,))]
    assert_dead(server, initiate, HandshakeError, "expects nothing while authenticating")


def test_cookie_after_one_rotation_accepted() -> None:
    keys = CurveServerKeys(SERVER_RAW, SERVER_SECRET_RAW, cookie_lifetime=60)
    keys.tick(0.0)
    client, server = server_after_hello(keys)
    initiate = initiate_from(client, server)
    keys.tick(60.0)  # a new cookie key; the previous one still opens cookies
    assert server.receive_data(initiate) == [AuthRequest(b"CURVE", (CLIENT_RAW,))]
    [complete] = server.auth_result(200)
    assert isinstance(complete, HandshakeComplete)
    assert keys.remembered_cookies == 1
    keys.tick(119.0)
    assert keys.remembered_cookies == 1
    keys.tick(120.0)  # that cookie has expired: no need to remember it
    assert keys.remembered_cookies == 0


@pytest.mark.parametrize("times", [[60.0, 120.0], [120.0], [500.0]])
def test_cookie_after_two_rotations_refused(times: list[float]) -> None:
    keys = CurveServerKeys(SERVER_RAW, SERVER_SECRET_RAW, cookie_lifetime=60)
    keys.tick(0.0)
    client, server = server_after_hello(keys)
    initiate = initiate_from(client, server)
    for now in times:
        keys.tick(now)
    assert_dead(server, initiate, HandshakeError, "did not issue, or one that expired")


def test_cookie_only_rotates_when_due() -> None:
    keys = CurveServerKeys(SERVER_RAW, SERVER_SECRET_RAW, cookie_lifetime=60)
    keys.tick(0.0)
    client, server = server_after_hello(keys)
    initiate = initiate_from(client, server)
    for now in (10.0, 30.0, 59.9, 60.0, 100.0):  # a single rotation, at 60
        keys.tick(now)
    assert server.receive_data(initiate) == [AuthRequest(b"CURVE", (CLIENT_RAW,))]


# ---------------------------------------------- frames out of place


def fake_message() -> bytes:
    return command(b"MESSAGE", (3).to_bytes(8, "big") + os.urandom(40))


def test_message_before_initiate_refused() -> None:
    _, server = server_after_hello()
    assert_dead(
        server, fake_message(), HandshakeError, "MESSAGE where the CURVE handshake expects INITIATE"
    )


def test_message_before_ready_refused_by_client() -> None:
    client, server = server_after_hello()
    initiate_from(client, server)
    assert_dead(
        client, fake_message(), HandshakeError, "MESSAGE where the CURVE handshake expects READY"
    )


def test_data_before_ready_refused() -> None:
    client, server = server_after_hello()
    assert_dead(
        server, frame(b"\x07MESSAGE" + bytes(40)), HandshakeError, "data before the handshake"
    )
    initiate_from(client, server)
    assert_dead(client, frame(b"data"), HandshakeError, "data before the handshake")


@pytest.mark.parametrize(
    ("mangle", "match"),
    [
        (lambda r: r[:20], "truncated CURVE READY"),
        (lambda r: flip(r, 30), "READY failed authentication"),
        (lambda r: flip(r, 2), "READY failed authentication"),
    ],
    ids=["truncated", "corrupted-box", "corrupted-nonce"],
)
def test_bad_ready_refused(mangle: Callable[[bytes], bytes], match: str) -> None:
    client, server = server_after_hello()
    assert server.receive_data(initiate_from(client, server)) == [
        AuthRequest(b"CURVE", (CLIENT_RAW,))
    ]
    server.auth_result(200)
    ready = only_frame(server.data_to_send())
    assert ready.startswith(b"\x05READY")
    assert_dead(client, command(b"READY", mangle(ready[6:])), HandshakeError, match)


# --------------------------------------- hostile frames after the handshake


def test_corrupted_message_refused() -> None:
    client, server = connected()
    wire = encoded(client, [[b"payload"]])
    assert_dead(server, flip(wire, len(wire) - 3), RemoteProtocolError, "failed authentication")


def test_replayed_message_refused() -> None:
    client, server = connected()
    wire = encoded(client, [[b"once"]])
    assert server.receive_data(wire) == [[b"once"]]
    assert_dead(
        server, wire, RemoteProtocolError, "nonce 3 does not exceed the previous one \\(3\\)"
    )


def test_lower_nonce_refused() -> None:
    client, server = connected()
    first = encoded(client, [[b"first"]])
    second = encoded(client, [[b"second"]])
    assert server.receive_data(second) == [[b"second"]]
    assert_dead(
        server, first, RemoteProtocolError, "nonce 3 does not exceed the previous one \\(4\\)"
    )


def test_server_message_reflected_back_refused() -> None:
    # The server's own MESSAGE (nonce above the client's) must not open as the client's.
    _, server = connected()
    wire = encoded(server, [[b"1"], [b"2"], [b"3"]])
    *_, (_, last) = frames_of(wire)
    assert nonce(last[8:16]) == 4
    assert_dead(server, frame(last), RemoteProtocolError, "failed authentication")


@pytest.mark.parametrize(
    "wire",
    [frame(b"hello"), frame(b""), command(b"PING", b"\x00\x00"), frame(b"\x07MESSAGX" + bytes(40))],
    ids=["data", "empty", "plain-PING", "misnamed"],
)
def test_plaintext_frame_refused(wire: bytes) -> None:
    _, server = connected()
    assert_dead(server, wire, RemoteProtocolError, "not a CURVE MESSAGE")


@pytest.mark.parametrize("size", [8, 16, 32])
def test_truncated_message_refused(size: int) -> None:
    client, server = connected()
    body = only_frame(encoded(client, [[b"payload"]]))
    assert_dead(
        server, frame(body[:size]), RemoteProtocolError, f"truncated CURVE MESSAGE \\({size}"
    )


def test_message_cut_short_refused() -> None:
    client, server = connected()
    body = only_frame(encoded(client, [[b"payload"]]))
    assert_dead(server, frame(body[:-1]), RemoteProtocolError, "failed authentication")


def test_forged_message_with_huge_nonce_does_not_block_the_next() -> None:
    client, server = connected()
    forged = b"\x07MESSAGE" + (2**64 - 1).to_bytes(8, "big") + os.urandom(17)
    with pytest.raises(RemoteProtocolError, match="failed authentication"):
        server.mechanism.decode_frame(0, forged)
    genuine = only_frame(encoded(client, [[b"still here"]]))
    assert server.mechanism.decode_frame(0, genuine) == (0, b"still here")
    # And on the connection, the forgery is fatal.
    assert_dead(server, frame(forged), RemoteProtocolError, "failed authentication")


# ---------------------------------------------- no state before INITIATE


def byte_values(values: Iterable[object]) -> list[bytes]:
    """Every bytes-like value in ``values``, including inside lists, tuples and dicts."""
    found: list[bytes] = []
    stack: list[object] = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, bytes | bytearray | memoryview):
            found.append(bytes(value))
        elif isinstance(value, list | tuple | set | frozenset):
            stack.extend(value)
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
    return found


def test_no_per_connection_state_before_initiate() -> None:
    keys = CurveServerKeys(SERVER_RAW, SERVER_SECRET_RAW)
    client, server = curve_client(), curve_server(keys)
    server.data_to_send()
    hello = hello_from(client)
    client_short = only_frame(hello[64:])[80:112]
    assert server.receive_data(hello) == []
    welcome = server.data_to_send()
    assert len(only_frame(welcome)) == 168

    mechanism = server.mechanism
    state = vars(mechanism)
    assert state["_shared"] == b""
    assert state["_peer_key"] is None
    own = byte_values(value for name, value in state.items() if name != "_keys")
    assert b"INITIATE" in own  # the walk does find the mechanism's bytes
    assert not [v for v in own if len(v) >= 32], "per-connection key material kept"
    assert not [v for v in byte_values(vars(server).values()) if client_short in v]
    assert not [v for v in byte_values(vars(keys).values()) if client_short in v]
    assert keys.remembered_cookies == 0

    # The cookie carries everything: the handshake still completes.
    assert client.receive_data(welcome) == []
    assert server.receive_data(client.data_to_send()) == [AuthRequest(b"CURVE", (CLIENT_RAW,))]
    server.auth_result(200)
    assert keys.remembered_cookies == 1
    assert len(vars(server.mechanism)["_shared"]) == 32


def test_hello_flood_retains_no_memory() -> None:
    keys = CurveServerKeys(SERVER_RAW, SERVER_SECRET_RAW)
    hellos = [hello_from(curve_client()) for _ in range(2000)]

    def answer(hello: bytes) -> ZmtpConnection:
        server = curve_server(keys)
        assert server.receive_data(hello) == []
        assert len(server.data_to_send()) == 64 + 2 + 168
        return server

    for hello in hellos[:20]:  # warm up lazy allocations
        answer(hello)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [answer(hello) for hello in hellos[:500]]
        gc.collect()
        holding = tracemalloc.get_traced_memory()[0] - before
        # Control: the measurement does see connections that are kept alive.
        assert holding > 200 * 1024
        del kept
        for hello in hellos:
            answer(hello)
        gc.collect()
        growth = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert growth < 64 * 1024, f"{growth} bytes retained after 2000 HELLOs"
    assert keys.remembered_cookies == 0


def test_bogus_hello_flood_refused() -> None:
    keys = CurveServerKeys(SERVER_RAW, SERVER_SECRET_RAW)
    body = real_hello()
    for _ in range(50):
        server = curve_server(keys)
        bogus = body[:120] + os.urandom(80)
        with pytest.raises(HandshakeError, match="cannot open the client's HELLO"):
            server.receive_data(CLIENT_GREETING + frame(bogus, command=True))
        assert server.data_to_send() == SERVER_GREETING
    assert keys.remembered_cookies == 0
