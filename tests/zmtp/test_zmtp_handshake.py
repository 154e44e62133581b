"""Greeting and NULL handshake: two ZmtpConnections talking, and what goes on the wire."""

from __future__ import annotations

import itertools

import pytest

from trimq._errors import HandshakeError, LocalProtocolError
from trimq.zmtp import (
    GREETING_SIZE,
    Event,
    HandshakeComplete,
    NullMechanism,
    SocketType,
    ZmtpConnection,
    encode_greeting,
    peer_allowed,
)

S = SocketType
PAIRS = list(itertools.product(SocketType, repeat=2))


def pump(src: ZmtpConnection, dst: ZmtpConnection) -> list[Event]:
    """Move src's queued command bytes to dst; return dst's events."""
    data = src.data_to_send()
    return dst.receive_data(data) if data else []


def handshake(a: ZmtpConnection, b: ZmtpConnection) -> tuple[list[Event], list[Event]]:
    a_events: list[Event] = []
    b_events: list[Event] = []
    for _ in range(3):  # greetings, then READYs, then nothing
        b_events += pump(a, b)
        a_events += pump(b, a)
    return a_events, b_events


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [p for p in PAIRS if peer_allowed(*p)],
    ids=lambda t: t.name,
)
def test_valid_pairs_talk(ours: SocketType, theirs: SocketType) -> None:
    a = ZmtpConnection(ours, identity=b"A")
    b = ZmtpConnection(theirs, identity=b"B")
    a_events, b_events = handshake(a, b)
    sends_identity = theirs in (S.REQ, S.DEALER, S.ROUTER)
    expected_metadata = {"Socket-Type": theirs.zmtp_name}
    if sends_identity:
        expected_metadata["Identity"] = b"B"
    assert a_events == [
        HandshakeComplete(
            peer_socket_type=theirs,
            peer_identity=b"B" if sends_identity else b"",
            peer_metadata=expected_metadata,
            peer_minor=1,
        )
    ]
    assert isinstance(b_events[0], HandshakeComplete)
    assert b_events[0].peer_socket_type is ours
    assert a.handshake_complete
    assert b.handshake_complete
    message = [b"frame-1", b"", bytes(300)]
    assert b.receive_data(b"".join(a.encode_messages([message]))) == [message]
    assert a.receive_data(b"".join(b.encode_messages([[b"back"]]))) == [[b"back"]]


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [p for p in PAIRS if not peer_allowed(*p)],
    ids=lambda t: t.name,
)
def test_invalid_pairs_refused(ours: SocketType, theirs: SocketType) -> None:
    a = ZmtpConnection(ours)
    b = ZmtpConnection(theirs)
    b.receive_data(a.data_to_send())
    message = f"incompatible socket types: {ours.name} cannot talk to {theirs.name}"
    with pytest.raises(HandshakeError, match=message):
        a.receive_data(b.data_to_send())
    with pytest.raises(HandshakeError, match=f"{theirs.name} cannot talk to {ours.name}"):
        b.receive_data(a.data_to_send())
    assert not a.handshake_complete


def test_ready_queued_before_refusing_unfit_peer() -> None:
    """Greeting and READY in one read from an unfit peer: our READY is still queued.

    libzmq (4.3.5) sends its NULL READY whatever the peer's type and only then
    refuses; a libzmq peer that reads our READY sees the mismatch as a protocol
    error and stops reconnecting, where a bare hang-up would make it retry.
    """
    rep = ZmtpConnection(S.REP)
    push = ZmtpConnection(S.PUSH)
    assert rep.data_to_send() == encode_greeting()
    push.receive_data(encode_greeting())
    with pytest.raises(HandshakeError, match="REP cannot talk to PUSH"):
        rep.receive_data(push.data_to_send())  # PUSH's greeting and READY together
    wire = rep.data_to_send()
    assert wire == b"\x04" + bytes([len(wire) - 2]) + b"\x05READY\x0bSocket-Type\x00\x00\x00\x03REP"
    with pytest.raises(HandshakeError, match="PUSH cannot talk to REP"):
        push.receive_data(wire)


def test_greeting_layout() -> None:
    g = encode_greeting()
    assert len(g) == GREETING_SIZE == 64
    assert g[0] == 0xFF
    assert g[1:9] == (1).to_bytes(8, "big")  # libzmq: identity length + 1
    assert g[9] == 0x7F
    assert g[10:12] == b"\x03\x01"
    assert g[12:32] == b"NULL" + bytes(16)
    assert g[32] == 0
    assert g[33:] == bytes(31)
    server = encode_greeting(b"CURVE", True, minor=0, identity_size=5)
    assert server[1:9] == (6).to_bytes(8, "big")
    assert server[11] == 0
    assert server[12:32] == b"CURVE" + bytes(15)
    assert server[32] == 1
    with pytest.raises(ValueError, match="longer than 20"):
        encode_greeting(b"X" * 21)
    with pytest.raises(ValueError, match="not a byte"):
        encode_greeting(minor=256)


def test_connection_greeting_matches_encode_greeting() -> None:
    assert ZmtpConnection(S.PUB).data_to_send() == encode_greeting()
    assert ZmtpConnection(S.PUB, mechanism=NullMechanism()).data_to_send() == encode_greeting()


def _ready_body(conn: ZmtpConnection) -> bytes:
    conn.data_to_send()
    conn.receive_data(encode_greeting())
    wire = conn.data_to_send()
    assert wire[0] == 0x04
    assert wire[1] == len(wire) - 2
    return wire[2:]


def test_router_ready_is_libzmq_sized() -> None:
    # libzmq's ROUTER READY body is 41 bytes: Socket-Type plus an empty Identity.
    body = _ready_body(ZmtpConnection(S.ROUTER))
    assert len(body) == 41
    assert body == (
        b"\x05READY" + b"\x0bSocket-Type\x00\x00\x00\x06ROUTER" + b"\x08Identity\x00\x00\x00\x00"
    )


@pytest.mark.parametrize("socket_type", list(SocketType), ids=lambda t: t.name)
def test_identity_sent_only_by_req_dealer_router(socket_type: SocketType) -> None:
    body = _ready_body(ZmtpConnection(socket_type, identity=b"me"))
    name = socket_type.zmtp_name
    expected = b"\x05READY\x0bSocket-Type" + len(name).to_bytes(4, "big") + name
    if socket_type in (S.REQ, S.DEALER, S.ROUTER):
        expected += b"\x08Identity\x00\x00\x00\x02me"
    assert body == expected


def test_user_metadata_sent_and_received() -> None:
    a = ZmtpConnection(S.DEALER, metadata={"X-Hello": b"world", "X-Empty": b""})
    b = ZmtpConnection(S.ROUTER)
    a_events, b_events = handshake(a, b)
    assert isinstance(b_events[0], HandshakeComplete)
    assert b_events[0].peer_metadata == {
        "Socket-Type": b"DEALER",
        "Identity": b"",
        "X-Hello": b"world",
        "X-Empty": b"",
    }
    assert b.peer_metadata == b_events[0].peer_metadata
    assert isinstance(a_events[0], HandshakeComplete)


@pytest.mark.parametrize(
    ("metadata", "match"),
    [
        ({"Hello": b"x"}, "must start with 'X-'"),
        ({"Socket-Type": b"PUB"}, "must start with 'X-'"),
        ({"X-" + "n" * 254: b"x"}, "over 255 bytes"),
        ({"X-Str": "text"}, "must be bytes"),
    ],
    ids=["no-prefix", "shadowing", "long-name", "str-value"],
)
def test_bad_metadata_refused(metadata: dict[str, bytes], match: str) -> None:
    with pytest.raises(LocalProtocolError, match=match):
        ZmtpConnection(S.DEALER, metadata=metadata)


def test_identity_limits() -> None:
    ZmtpConnection(S.DEALER, identity=b"i" * 255)
    with pytest.raises(LocalProtocolError, match="0-255"):
        ZmtpConnection(S.DEALER, identity=b"i" * 256)


def test_identity_starting_with_zero_accepted_from_wire() -> None:
    a = ZmtpConnection(S.DEALER, identity=b"\x00abc")
    b = ZmtpConnection(S.ROUTER)
    handshake(a, b)
    assert b.peer_identity == b"\x00abc"


def test_zmtp30_peer() -> None:
    conn = ZmtpConnection(S.SUB)
    conn.data_to_send()
    events = conn.receive_data(encode_greeting(minor=0))
    assert events == []
    assert conn.peer_minor == 0
    events = conn.receive_data(b"\x04\x19\x05READY\x0bSocket-Type\x00\x00\x00\x03PUB")
    assert events == [
        HandshakeComplete(
            peer_socket_type=S.PUB,
            peer_identity=b"",
            peer_metadata={"Socket-Type": b"PUB"},
            peer_minor=0,
        )
    ]


def test_handshake_and_data_in_one_buffer_each_way() -> None:
    a = ZmtpConnection(S.PUSH)
    b = ZmtpConnection(S.PULL)
    b.receive_data(a.data_to_send())
    a.receive_data(b.data_to_send())  # b's greeting + READY: a is done
    assert a.handshake_complete
    wire = a.data_to_send() + b"".join(a.encode_messages([[b"x"], [b"y"]]))
    assert b.receive_data(wire)[1:] == [[b"x"], [b"y"]]
