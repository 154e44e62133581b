"""Encoding data messages and commands, and the connection's bookkeeping."""

from __future__ import annotations

import pytest

from trimq._errors import LocalProtocolError, RemoteProtocolError
from trimq.zmtp import SocketType, ZmtpConnection, encode_greeting

S = SocketType
X255 = bytes(range(255))
X256 = bytes(range(256))
PING_BODY = b"\x04PING\x00\x0actx"


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


READY_DEALER = ready(b"DEALER", b"")
PONG_REPLY = command(b"PONG", b"ctx")


def handshake_bytes(peer: SocketType, minor: int = 1) -> bytes:
    """What a peer of type ``peer`` sends before any data: greeting and READY."""
    return encode_greeting(minor=minor) + ready(peer.zmtp_name)


# ---------------------------------------------------------------- encoding


def connected(ours: SocketType, peer: SocketType, minor: int = 1) -> ZmtpConnection:
    conn = ZmtpConnection(ours)
    conn.receive_data(handshake_bytes(peer, minor))
    conn.data_to_send()
    return conn


def joined(chunks: list[bytes | bytearray | memoryview]) -> bytes:
    return b"".join(bytes(c) for c in chunks)


@pytest.mark.parametrize(
    ("message", "wire"),
    [
        ([b"hello"], b"\x00\x05hello"),
        ([b""], b"\x00\x00"),
        ([b"a", b"", b"b"], b"\x01\x01a\x01\x00\x00\x01b"),
        ([X255], b"\x00\xff" + X255),
        ([X256], b"\x02" + (256).to_bytes(8, "big") + X256),
        ([X256, b"z"], b"\x03" + (256).to_bytes(8, "big") + X256 + b"\x00\x01z"),
        ([bytearray(b"ba"), memoryview(b"mv")], b"\x01\x02ba\x00\x02mv"),
        ((b"tu", b"ple"), b"\x01\x02tu\x00\x03ple"),
    ],
)
def test_encode_exact_bytes(message: list[bytes], wire: bytes) -> None:
    conn = connected(S.DEALER, S.ROUTER)
    assert joined(conn.encode_messages([message])) == wire


def test_encode_coalesces_and_passes_big_bodies_uncopied() -> None:
    conn = connected(S.PUSH, S.PULL)
    big = bytes(32 * 1024)
    bigger = bytearray(100_000)
    chunks = conn.encode_messages([[b"a"], [b"b", big], [b"c"], [bigger], [b"d"], [b"e"]])
    assert len(chunks) == 5
    assert chunks[1] is big
    assert chunks[3] is bigger
    assert bytes(chunks[0]) == b"\x00\x01a\x01\x01b\x02" + len(big).to_bytes(8, "big")
    assert bytes(chunks[2]) == b"\x00\x01c\x02" + len(bigger).to_bytes(8, "big")
    assert bytes(chunks[4]) == b"\x00\x01d\x00\x01e"
    just_below = bytes(32 * 1024 - 1)
    assert len(conn.encode_messages([[just_below]])) == 1
    assert conn.encode_messages([]) == []


def test_encode_memoryview_of_wider_items() -> None:
    conn = connected(S.PUSH, S.PULL)
    ints = memoryview(bytes(range(8))).cast("i")
    assert len(ints) == 2
    assert joined(conn.encode_messages([[ints]])) == b"\x00\x08" + bytes(range(8))
    square = memoryview(bytes(range(4))).cast("B", (2, 2))
    strided = memoryview(bytes(range(8)))[::2]
    assert joined(conn.encode_messages([[square, strided]])) == (
        b"\x01\x04" + bytes(range(4)) + b"\x00\x04" + bytes(range(0, 8, 2))
    )


def test_encode_before_handshake_refused() -> None:
    conn = ZmtpConnection(S.PUSH)
    with pytest.raises(LocalProtocolError, match="before the handshake"):
        conn.encode_messages([[b"x"]])
    conn.receive_data(encode_greeting())
    with pytest.raises(LocalProtocolError, match="before the handshake"):
        conn.encode_messages([[b"x"]])
    with pytest.raises(LocalProtocolError, match="before the handshake"):
        conn.send_ping()


def test_encode_after_error_refused() -> None:
    conn = connected(S.PUSH, S.PULL)
    with pytest.raises(RemoteProtocolError):
        conn.receive_data(READY_DEALER)
    with pytest.raises(LocalProtocolError, match="failed connection"):
        conn.encode_messages([[b"x"]])


def test_empty_message_refused_and_queued_commands_kept() -> None:
    conn = connected(S.DEALER, S.ROUTER)
    conn.send_ping(1.0, b"c")
    with pytest.raises(LocalProtocolError, match="at least one frame"):
        conn.encode_messages([[b"a"], [b"b", bytes(40000)], []])
    assert conn.data_to_send() == command(b"PING", b"\x00\x0ac")
    with pytest.raises(TypeError):
        conn.encode_messages([["text"]])  # type: ignore[list-item]


def test_commands_go_first_in_encoded_output() -> None:
    conn = connected(S.DEALER, S.ROUTER)
    conn.receive_data(frame(PING_BODY, command=True))
    conn.send_ping(2.5, b"abc")
    chunks = conn.encode_messages([[b"m"]])
    assert joined(chunks) == PONG_REPLY + command(b"PING", b"\x00\x19abc") + b"\x00\x01m"
    assert conn.data_to_send() == b""


def test_a_ping_flood_owes_one_pong_with_the_newest_context() -> None:
    conn = connected(S.DEALER, S.ROUTER)
    pings = b"".join(command(b"PING", b"\x00\x00" + b"%d" % i) for i in range(10_000))
    events = conn.receive_data(pings)
    assert len(events) == 10_000
    assert conn.data_to_send() == command(b"PONG", b"9999")
    assert conn.data_to_send() == b""


@pytest.mark.parametrize(
    ("ttl", "wire_ttl"), [(0.0, 0), (0.04, 0), (0.06, 1), (1.0, 10), (-3.0, 0), (1e9, 65535)]
)
def test_send_ping_ttl(ttl: float, wire_ttl: int) -> None:
    conn = connected(S.PAIR, S.PAIR)
    conn.send_ping(ttl)
    assert conn.data_to_send() == command(b"PING", wire_ttl.to_bytes(2, "big"))


def test_send_ping_context_limit() -> None:
    conn = connected(S.PAIR, S.PAIR)
    conn.send_ping(0, b"x" * 16)
    with pytest.raises(LocalProtocolError, match="at most 16"):
        conn.send_ping(0, b"x" * 17)


def test_send_error() -> None:
    conn = ZmtpConnection(S.REP)
    conn.data_to_send()
    conn.send_error("400")
    assert conn.data_to_send() == command(b"ERROR", b"\x03400")
    conn.send_error("")
    assert conn.data_to_send() == command(b"ERROR", b"\x00")
    with pytest.raises(LocalProtocolError, match="at most 255"):
        conn.send_error("é" * 128)


# ----------------------------------------------------------- subscriptions


@pytest.mark.parametrize("ours", [S.SUB, S.XSUB])
def test_subscriptions_as_commands_to_31_peer(ours: SocketType) -> None:
    conn = connected(ours, S.PUB, minor=1)
    chunks = conn.encode_messages([[b"\x01A"], [b"\x00A"], [b"\x01"], [b"\x02x"], [b""]])
    assert joined(chunks) == (
        bytes.fromhex("040b09")
        + b"SUBSCRIBEA"
        + command(b"CANCEL", b"A")
        + command(b"SUBSCRIBE")
        + frame(b"\x02x")
        + frame(b"")
    )
    # Multipart messages are never turned into commands.
    assert joined(conn.encode_messages([[b"\x01A", b"x"]])) == frame(b"\x01A", more=True) + frame(
        b"x"
    )


@pytest.mark.parametrize("ours", [S.SUB, S.XSUB])
def test_subscriptions_as_data_to_30_peer(ours: SocketType) -> None:
    conn = connected(ours, S.XPUB, minor=0)
    assert conn.peer_minor == 0
    chunks = conn.encode_messages([[b"\x01topic"], [memoryview(b"\x00topic")]])
    assert joined(chunks) == frame(b"\x01topic") + frame(b"\x00topic")


def test_subscription_bytes_from_other_types_stay_data() -> None:
    conn = connected(S.PUB, S.SUB)
    assert joined(conn.encode_messages([[b"\x01A"]])) == frame(b"\x01A")


def test_subscribe_command_with_bytearray_and_long_topic() -> None:
    conn = connected(S.SUB, S.PUB)
    topic = b"t" * 300
    assert joined(conn.encode_messages([[bytearray(b"\x01" + topic)]])) == command(
        b"SUBSCRIBE", topic
    )


# ---------------------------------------------------------- bookkeeping


def _done(conn: ZmtpConnection) -> bool:
    # A function, not the property, so mypy does not narrow it between calls.
    return conn.handshake_complete


def test_state_properties() -> None:
    conn = ZmtpConnection(S.ROUTER)
    assert conn.socket_type is S.ROUTER
    assert not _done(conn)
    # (compared as a list so mypy does not narrow the properties to None)
    assert [conn.peer_minor, conn.peer_socket_type] == [None, None]
    assert conn.peer_identity == b""
    assert conn.peer_metadata == {}
    assert conn.error is None
    assert not conn.eof_received
    conn.receive_data(encode_greeting(minor=0))
    assert conn.peer_minor == 0
    assert not _done(conn)
    conn.receive_data(ready(b"DEALER", b"id"))
    assert _done(conn)
    assert conn.peer_socket_type is S.DEALER
    assert conn.peer_identity == b"id"
    assert conn.peer_metadata == {"Socket-Type": b"DEALER", "Identity": b"id"}
    assert conn.mechanism.name == b"NULL"


def test_greeting_only_once_handshake_bytes_follow() -> None:
    conn = ZmtpConnection(S.DEALER, identity=b"me")
    # libzmq puts the identity length + 1 in the padding.
    assert conn.data_to_send() == encode_greeting(identity_size=2)
    assert conn.data_to_send() == b""
    # Our READY goes out only after the peer's greeting (as libzmq does).
    conn.receive_data(encode_greeting()[:63])
    assert conn.data_to_send() == b""
    conn.receive_data(encode_greeting()[63:])
    assert conn.data_to_send() == ready(b"DEALER", b"me")
