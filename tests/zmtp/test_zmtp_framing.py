"""Byte-level ZMTP cases, each replayed whole, one byte at a time and in random splits."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

import pytest

from trimq._errors import (
    AuthenticationError,
    HandshakeError,
    LocalProtocolError,
    MessageTooLargeError,
    RemoteProtocolError,
)
from trimq.zmtp import (
    GREETING_SIZE,
    Cancel,
    Event,
    HandshakeComplete,
    Ping,
    Pong,
    SocketType,
    Subscribe,
    ZmtpConnection,
    encode_greeting,
)

S = SocketType


# ----------------------------------------------------------------- builders


def frame(body: bytes, *, more: bool = False, command: bool = False, long: bool = False) -> bytes:
    flags = (1 if more else 0) | (4 if command else 0)
    if long or len(body) > 255:
        return bytes((flags | 2,)) + len(body).to_bytes(8, "big") + body
    return bytes((flags, len(body))) + body


def command(name: bytes, data: bytes = b"") -> bytes:
    return frame(bytes((len(name),)) + name + data, command=True)


def prop(name: bytes, value: bytes) -> bytes:
    return bytes((len(name),)) + name + len(value).to_bytes(4, "big") + value


def ready(socket_type: bytes, identity: bytes | None = None) -> bytes:
    props = prop(b"Socket-Type", socket_type)
    if identity is not None:
        props += prop(b"Identity", identity)
    return command(b"READY", props)


def handshake_bytes(peer: SocketType, minor: int = 1) -> bytes:
    """What a peer of type ``peer`` sends before any data: greeting and READY."""
    return encode_greeting(minor=minor) + ready(peer.zmtp_name)


# ------------------------------------------------------------------ splits


def splits(data: bytes) -> Iterator[tuple[str, list[bytes]]]:
    yield "whole", [data]
    yield "bytewise", [data[i : i + 1] for i in range(len(data))]
    for seed in range(5):
        rng = random.Random(seed)
        pieces = []
        p = 0
        while p < len(data):
            n = rng.randint(1, 20)
            pieces.append(data[p : p + n])
            p += n
        yield f"random{seed}", pieces


def feed(conn: ZmtpConnection, pieces: list[bytes]) -> list[Event]:
    events: list[Event] = []
    for piece in pieces:
        events += conn.receive_data(piece)
    return events


# -------------------------------------------------------------- valid cases

X255 = bytes(range(255))
X256 = bytes(range(256))
PING_BODY = b"\x04PING\x00\x0actx"
PONG_REPLY = command(b"PONG", b"ctx")

# (id, our type, peer type, bytes after the peer's handshake, events after
#  HandshakeComplete, bytes we must queue in reply)
VALID: list[tuple[str, SocketType, SocketType, bytes, list[Event], bytes]] = [
    ("short", S.DEALER, S.ROUTER, frame(b"hello"), [[b"hello"]], b""),
    ("empty-frame", S.DEALER, S.ROUTER, frame(b""), [[b""]], b""),
    (
        "multipart",
        S.DEALER,
        S.ROUTER,
        frame(b"a", more=True) + frame(b"", more=True) + frame(b"b"),
        [[b"a", b"", b"b"]],
        b"",
    ),
    ("255-short", S.PULL, S.PUSH, b"\x00\xff" + X255, [[X255]], b""),
    ("256-long", S.PULL, S.PUSH, b"\x02" + (256).to_bytes(8, "big") + X256, [[X256]], b""),
    ("long-form-small", S.PULL, S.PUSH, b"\x02" + (3).to_bytes(8, "big") + b"abc", [[b"abc"]], b""),
    (
        "reserved-bits-ignored",
        S.PULL,
        S.PUSH,
        b"\xf9\x01a" + b"\xf8\x01b",
        [[b"a", b"b"]],
        b"",
    ),
    ("two-messages", S.PAIR, S.PAIR, frame(b"1") + frame(b"2"), [[b"1"], [b"2"]], b""),
    ("ping", S.DEALER, S.DEALER, frame(PING_BODY, command=True), [Ping(1.0, b"ctx")], PONG_REPLY),
    (
        "ping-long-context-truncated",
        S.DEALER,
        S.DEALER,
        command(b"PING", b"\xff\xff" + bytes(range(20))),
        [Ping(6553.5, bytes(range(16)))],
        command(b"PONG", bytes(range(16))),
    ),
    (
        "ping-empty-context",
        S.REP,
        S.REQ,
        command(b"PING", b"\x00\x00"),
        [Ping(0.0, b"")],
        command(b"PONG"),
    ),
    ("pong", S.REQ, S.REP, command(b"PONG", b"ctx"), [Pong(b"ctx")], b""),
    (
        "subscribe-vector",
        S.PUB,
        S.SUB,
        bytes.fromhex("040b09") + b"SUBSCRIBEA",
        [Subscribe(b"A")],
        b"",
    ),
    ("subscribe-all", S.XPUB, S.XSUB, command(b"SUBSCRIBE"), [Subscribe(b"")], b""),
    ("cancel", S.XPUB, S.SUB, command(b"CANCEL", b"topic"), [Cancel(b"topic")], b""),
    ("subscribe-ignored-on-sub", S.SUB, S.PUB, command(b"SUBSCRIBE", b"A"), [], b""),
    ("cancel-ignored-on-push", S.PUSH, S.PULL, command(b"CANCEL", b"A"), [], b""),
    ("3.0-subscription-is-data", S.PUB, S.SUB, frame(b"\x01topic"), [[b"\x01topic"]], b""),
    (
        "unknown-command-ignored",
        S.PAIR,
        S.PAIR,
        command(b"ABCD", b"x") + frame(b"m"),
        [[b"m"]],
        b"",
    ),
    (
        "command-between-frames",
        S.DEALER,
        S.ROUTER,
        frame(b"a", more=True) + frame(PING_BODY, command=True) + frame(b"b"),
        [Ping(1.0, b"ctx"), [b"a", b"b"]],
        PONG_REPLY,
    ),
    (
        "long-command",
        S.PUB,
        S.SUB,
        command(b"SUBSCRIBE", b"t" * 300),
        [Subscribe(b"t" * 300)],
        b"",
    ),
]


@pytest.mark.parametrize(
    ("ours", "peer", "wire", "expected", "reply"),
    [pytest.param(*case[1:], id=case[0]) for case in VALID],
)
@pytest.mark.parametrize("split", ["whole", "bytewise", "random0", "random1", "random2"])
def test_valid_stream(
    ours: SocketType,
    peer: SocketType,
    wire: bytes,
    expected: list[Event],
    reply: bytes,
    split: str,
) -> None:
    conn = ZmtpConnection(ours)
    greeting_and_ready = conn.data_to_send()
    assert len(greeting_and_ready) == GREETING_SIZE
    stream = handshake_bytes(peer) + wire
    pieces = dict(splits(stream))[split]
    events = feed(conn, pieces)
    assert isinstance(events[0], HandshakeComplete)
    assert events[0].peer_socket_type is peer
    assert events[1:] == expected
    assert (
        conn.data_to_send() == ready(ours.zmtp_name, b"" if _sends_identity(ours) else None) + reply
    )
    assert conn.receive_data(b"") == []


def _sends_identity(t: SocketType) -> bool:
    return t in (S.REQ, S.DEALER, S.ROUTER)


def test_router_sees_identity_in_any_split() -> None:
    stream = encode_greeting() + ready(b"DEALER", b"worker-1") + frame(b"job")
    for _, pieces in splits(stream):
        conn = ZmtpConnection(S.ROUTER)
        events = feed(conn, pieces)
        assert events[0] == HandshakeComplete(
            peer_socket_type=S.DEALER,
            peer_identity=b"worker-1",
            peer_metadata={"Socket-Type": b"DEALER", "Identity": b"worker-1"},
            peer_minor=1,
        )
        assert events[1:] == [[b"job"]]
        assert conn.peer_identity == b"worker-1"


def test_large_frame_split_everywhere() -> None:
    body = bytes(range(256)) * 400  # 100 KiB
    stream = handshake_bytes(S.PUSH) + frame(b"head", more=True) + frame(body) + frame(b"next")
    for size in (1, 7, 1000, 65536, len(stream)):
        conn = ZmtpConnection(S.PULL)
        pieces = [stream[i : i + size] for i in range(0, len(stream), size)]
        assert feed(conn, pieces)[1:] == [[b"head", body], [b"next"]]


# ---------------------------------------------------------------- refusals

HTTP = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n" + bytes(40)
ZMTP10 = b"\x01\x00" + bytes(62)
ZMTP10_LONG = b"\xff" + bytes(8) + b"\x00" + bytes(60)
ZMTP20 = b"\xff" + bytes(8) + b"\x7f\x01\x05" + bytes(52)
G = encode_greeting()
READY_DEALER = ready(b"DEALER", b"")
DONE = G + READY_DEALER  # a valid peer handshake for a DEALER/ROUTER


def _plain() -> bytes:
    return encode_greeting(b"PLAIN")


REFUSED: list[tuple[str, SocketType, bytes, type[Exception], str]] = [
    ("http", S.DEALER, HTTP, HandshakeError, "an HTTP client?"),
    ("tls", S.DEALER, b"\x16\x03\x01\x02\x00" + bytes(59), HandshakeError, "TLS"),
    ("zmtp1.0", S.DEALER, ZMTP10, HandshakeError, "not speaking ZMTP 3"),
    ("zmtp1.0-long", S.DEALER, ZMTP10_LONG, HandshakeError, "ZMTP 1.0"),
    ("zmtp2.0", S.DEALER, ZMTP20, HandshakeError, "ZMTP 2.0"),
    ("major0", S.DEALER, G[:10] + b"\x00" + G[11:], HandshakeError, "ZMTP 1.0"),
    ("major2", S.DEALER, G[:10] + b"\x02" + G[11:], HandshakeError, "ZMTP 2.x"),
    ("plain", S.DEALER, _plain(), HandshakeError, "we use NULL, the peer uses PLAIN"),
    ("curve", S.DEALER, encode_greeting(b"CURVE", True), HandshakeError, "the peer uses CURVE"),
    ("data-before-ready", S.DEALER, G + frame(b"x"), HandshakeError, "data before the handshake"),
    ("ping-before-ready", S.DEALER, G + command(b"PING", b"\0\0"), HandshakeError, "PING"),
    (
        "more-on-command-handshake",
        S.DEALER,
        G + frame(b"\x05READY", more=True, command=True),
        RemoteProtocolError,
        "MORE",
    ),
    (
        "more-on-command",
        S.DEALER,
        DONE + frame(PING_BODY, more=True, command=True),
        RemoteProtocolError,
        "MORE",
    ),
    (
        "bad-pair",
        S.PUSH,
        G + ready(b"PUB"),
        HandshakeError,
        "incompatible socket types: PUSH cannot talk to PUB",
    ),
    ("unknown-type", S.DEALER, G + ready(b"CLIENT"), HandshakeError, "unknown"),
    (
        "no-socket-type",
        S.DEALER,
        G + command(b"READY", prop(b"Identity", b"")),
        HandshakeError,
        "no Socket-Type",
    ),
    (
        "socket-type-case",
        S.DEALER,
        G + command(b"READY", prop(b"socket-type", b"ROUTER")),
        HandshakeError,
        "no Socket-Type",
    ),
    (
        "ready-truncated-name",
        S.DEALER,
        G + command(b"READY", b"\x0bSocket"),
        HandshakeError,
        "malformed READY",
    ),
    (
        "ready-truncated-value-length",
        S.DEALER,
        G + command(b"READY", b"\x0bSocket-Type\x00\x00"),
        HandshakeError,
        "malformed READY",
    ),
    (
        "ready-value-too-long",
        S.DEALER,
        G + command(b"READY", b"\x0bSocket-Type\x00\x00\x00\x09ROUTER"),
        HandshakeError,
        "malformed READY",
    ),
    (
        "ready-name-not-utf8",
        S.DEALER,
        G + command(b"READY", prop(b"\xff", b"")),
        HandshakeError,
        "not UTF-8",
    ),
    ("identity-too-long", S.ROUTER, G + ready(b"DEALER", b"i" * 256), HandshakeError, "256 bytes"),
    (
        # libzmq 4.3's PLAIN server really sends this (one byte short).
        "libzmq-plain-error-quirk",
        S.DEALER,
        G + b"\x04\x09^RROR\x03400",
        AuthenticationError,
        "peer refused the handshake: ERROR '400'",
    ),
    (
        "error-in-handshake",
        S.DEALER,
        G + command(b"ERROR", b"\x03400"),
        AuthenticationError,
        "peer refused the handshake: ERROR '400'",
    ),
    (
        "error-after",
        S.DEALER,
        DONE + frame(b"ok") + command(b"ERROR", b"\x03400"),
        HandshakeError,
        "peer sent ERROR: 400",
    ),
    (
        "error-malformed",
        S.DEALER,
        DONE + command(b"ERROR", b"\x09ab"),
        HandshakeError,
        "peer sent ERROR: ab",
    ),
    ("error-empty", S.DEALER, DONE + command(b"ERROR"), HandshakeError, "peer sent ERROR: "),
    ("ready-again", S.DEALER, DONE + READY_DEALER, RemoteProtocolError, "READY again"),
    ("empty-command", S.DEALER, DONE + b"\x04\x00", RemoteProtocolError, "empty command"),
    ("empty-command-handshake", S.DEALER, G + b"\x04\x00", RemoteProtocolError, "empty command"),
    (
        "bad-command-name-length",
        S.DEALER,
        DONE + b"\x04\x03\x09PI",
        RemoteProtocolError,
        "name length 9",
    ),
    (
        "ping-without-ttl",
        S.DEALER,
        DONE + command(b"PING", b"\x01"),
        RemoteProtocolError,
        "malformed PING",
    ),
    (
        "2**62-length",
        S.DEALER,
        DONE + b"\x02" + (2**62).to_bytes(8, "big"),
        MessageTooLargeError,
        f"frame length {2**62} is impossible",
    ),
    (
        "2**47-length",
        S.DEALER,
        DONE + b"\x00\x01x\x03" + (2**47).to_bytes(8, "big"),
        MessageTooLargeError,
        "impossible",
    ),
    (
        "2**62-in-handshake",
        S.DEALER,
        G + b"\x06" + (2**62).to_bytes(8, "big"),
        MessageTooLargeError,
        "impossible",
    ),
    (
        "huge-command",
        S.DEALER,
        DONE + b"\x06" + (2**21).to_bytes(8, "big"),
        MessageTooLargeError,
        "commands are limited",
    ),
    (
        "huge-handshake-command",
        S.DEALER,
        G + b"\x06" + (2**21).to_bytes(8, "big"),
        MessageTooLargeError,
        "commands are limited",
    ),
]


def _refusal_params() -> list[object]:
    return [pytest.param(*case[1:], id=case[0]) for case in REFUSED]


@pytest.mark.parametrize(("ours", "wire", "exc_type", "match"), _refusal_params())
@pytest.mark.parametrize("split", ["whole", "bytewise", "random0", "random3"])
def test_refused(
    ours: SocketType, wire: bytes, exc_type: type[Exception], match: str, split: str
) -> None:
    conn = ZmtpConnection(ours)
    pieces = dict(splits(wire))[split]
    with pytest.raises(exc_type) as info:
        feed(conn, pieces)
    assert match in str(info.value)
    assert conn.error is info.value
    # The connection is dead: every later call raises the same error.
    with pytest.raises(exc_type) as again:
        conn.receive_data(b"\x00\x01x")
    assert again.value is info.value
    with pytest.raises(exc_type):
        conn.receive_data(b"")


@pytest.mark.parametrize(
    ("first", "hint"),
    [(b"G", "0x47 'G'); an HTTP client?"), (b"P", "HTTP"), (b"\x16", "TLS"), (b"\x00", "0x00")],
)
def test_non_zmtp_refused_at_first_byte(first: bytes, hint: str) -> None:
    conn = ZmtpConnection(S.REP)
    with pytest.raises(HandshakeError, match="not speaking ZMTP") as info:
        conn.receive_data(first)
    assert hint in str(info.value)


def test_old_versions_refused_before_full_greeting() -> None:
    conn = ZmtpConnection(S.REP)
    with pytest.raises(HandshakeError, match=r"ZMTP 2\.0"):
        conn.receive_data(ZMTP20[:11])
    conn = ZmtpConnection(S.REP)
    with pytest.raises(HandshakeError, match=r"ZMTP 1\.0"):
        conn.receive_data(ZMTP10_LONG[:10])
    conn = ZmtpConnection(S.REP)
    with pytest.raises(HandshakeError, match="mechanism mismatch"):
        conn.receive_data(_plain()[:32])


def test_padding_is_not_validated() -> None:
    conn = ZmtpConnection(S.PULL)
    odd = b"\xff" + b"\xde\xad\xbe\xef" * 2 + G[9:33] + b"\x55" * 31
    events = conn.receive_data(odd + ready(b"PUSH"))
    assert isinstance(events[0], HandshakeComplete)


@pytest.mark.parametrize(
    ("major", "minor", "expected"),
    [(3, 0, 0), (3, 1, 1), (3, 2, 1), (3, 255, 1), (4, 0, 1), (255, 0, 1)],
)
def test_peer_minor(major: int, minor: int, expected: int) -> None:
    conn = ZmtpConnection(S.PULL)
    greeting = bytearray(encode_greeting())
    greeting[10] = major
    greeting[11] = minor
    events = conn.receive_data(bytes(greeting) + ready(b"PUSH"))
    assert conn.peer_minor == expected
    assert events == [
        HandshakeComplete(
            peer_socket_type=S.PUSH,
            peer_identity=b"",
            peer_metadata={"Socket-Type": b"PUSH"},
            peer_minor=expected,
        )
    ]


# ------------------------------------------------------------ size limits


def test_maxmsgsize_refused_from_header_alone() -> None:
    conn = ZmtpConnection(S.PULL, maxmsgsize=1000)
    conn.receive_data(handshake_bytes(S.PUSH))
    assert conn.receive_data(frame(b"x" * 1000)) == [[b"x" * 1000]]
    header = b"\x02" + (1001).to_bytes(8, "big")
    with pytest.raises(MessageTooLargeError, match="maxmsgsize is 1000"):
        conn.receive_data(header)


def test_maxmsgsize_counts_whole_multipart_message() -> None:
    conn = ZmtpConnection(S.PULL, maxmsgsize=10)
    conn.receive_data(handshake_bytes(S.PUSH))
    assert conn.receive_data(frame(b"12345", more=True) + frame(b"12345")) == [[b"12345", b"12345"]]
    conn.receive_data(frame(b"123456", more=True))
    with pytest.raises(MessageTooLargeError, match="at least 11 bytes"):
        conn.receive_data(b"\x00\x05")  # the next header alone is enough


def test_maxmsgsize_zero_allows_only_empty_frames() -> None:
    conn = ZmtpConnection(S.PULL, maxmsgsize=0)
    conn.receive_data(handshake_bytes(S.PUSH))
    assert conn.receive_data(frame(b"", more=True) + frame(b"")) == [[b"", b""]]
    with pytest.raises(MessageTooLargeError):
        conn.receive_data(b"\x00\x01")


def test_maxmsgsize_does_not_apply_to_commands() -> None:
    conn = ZmtpConnection(S.PUB, maxmsgsize=2)
    conn.receive_data(handshake_bytes(S.SUB) + command(b"SUBSCRIBE", b"long topic"))
    assert conn.receive_data(command(b"SUBSCRIBE", b"x")) == [Subscribe(b"x")]


def test_negative_maxmsgsize_is_unlimited() -> None:
    conn = ZmtpConnection(S.PULL, maxmsgsize=-5)
    conn.receive_data(handshake_bytes(S.PUSH))
    assert conn.receive_data(frame(b"x" * 5000)) == [[b"x" * 5000]]


# --------------------------------------------------------------------- EOF


@pytest.mark.parametrize(
    ("wire", "match"),
    [
        (G[:5], "mid-greeting (after 5 of 64 bytes)"),
        (DONE + b"\x00", "mid-frame"),
        (DONE + b"\x02\x00\x00", "mid-frame"),
        (DONE + b"\x00\x05ab", "mid-frame"),
        (DONE + frame(b"a", more=True), "mid-message"),
        (G + b"\x04", "mid-frame"),
    ],
    ids=["greeting", "header", "long-header", "body", "message", "handshake-header"],
)
def test_eof_in_the_middle(wire: bytes, match: str) -> None:
    conn = ZmtpConnection(S.ROUTER)
    conn.receive_data(wire)
    with pytest.raises(RemoteProtocolError, match=re.escape(match)):
        conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match=re.escape(match)):
        conn.receive_data(b"more")


@pytest.mark.parametrize(
    "wire", [b"", G, DONE, DONE + frame(b"x")], ids=["nothing", "greeting", "handshake", "message"]
)
def test_clean_eof(wire: bytes) -> None:
    conn = ZmtpConnection(S.ROUTER)
    if wire:
        conn.receive_data(wire)
    assert conn.receive_data(b"") == []
    assert conn.eof_received
    assert conn.receive_data(b"") == []
    with pytest.raises(LocalProtocolError, match="after EOF"):
        conn.receive_data(b"x")


def test_accepts_bytearray_and_memoryview() -> None:
    conn = ZmtpConnection(S.PULL)
    wire = handshake_bytes(S.PUSH) + frame(b"abc")
    events = conn.receive_data(bytearray(wire[:70]))
    events += conn.receive_data(memoryview(wire)[70:])
    assert events[1:] == [[b"abc"]]
    assert all(type(f) is bytes for f in events[1])  # type: ignore[union-attr]
