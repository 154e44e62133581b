"""Property-based tests: round trips, split invariance, and fuzzing the parser."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trimq._errors import RemoteProtocolError
from trimq.zmtp import (
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
FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

EVENT_TYPES = (list, HandshakeComplete, Ping, Pong, Subscribe, Cancel)


def connected_pair(
    sender_type: SocketType, receiver_type: SocketType
) -> tuple[ZmtpConnection, ZmtpConnection, bytes]:
    """A sender that has completed its handshake with a receiver-type peer, a fresh
    receiver, and the sender's greeting and READY, which the receiver has *not*
    seen yet (so tests can split them too)."""
    sender = ZmtpConnection(sender_type)
    receiver = ZmtpConnection(receiver_type)
    sender.receive_data(peer_handshake(receiver_type))
    assert sender.handshake_complete
    return sender, receiver, sender.data_to_send()


def peer_handshake(peer_type: SocketType) -> bytes:
    """The greeting and READY a connection of ``peer_type`` sends."""
    peer = ZmtpConnection(peer_type)
    greeting = peer.data_to_send()
    peer.receive_data(encode_greeting())
    return greeting + peer.data_to_send()


def split_at(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = []
    prev = 0
    for point in [*points, len(data)]:
        pieces.append(data[prev:point])
        prev = point
    return [p for p in pieces if p]


def run(conn: ZmtpConnection, pieces: list[bytes]) -> tuple[list[Event], str | None]:
    """Feed pieces then EOF; return all events and the error (type and text), if any.

    Anything but events or RemoteProtocolError fails the test.
    """
    events: list[Event] = []
    try:
        for piece in pieces:
            got = conn.receive_data(piece)
            assert isinstance(got, list)
            for event in got:
                assert isinstance(event, EVENT_TYPES)
                if isinstance(event, list):
                    assert event
                    assert all(type(f) is bytes for f in event)
            events += got
        assert conn.receive_data(b"") == []
    except RemoteProtocolError as exc:
        events += conn.events_before_error
        return events, f"{type(exc).__name__}: {exc}"
    return events, None


frames = st.one_of(
    st.binary(max_size=40),
    st.binary(min_size=250, max_size=600),
    st.integers(min_value=30_000, max_value=70_000).map(bytes),  # crosses the no-copy size
)
messages = st.lists(st.lists(frames, min_size=1, max_size=4), max_size=12)
cuts = st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=12)


@FAST
@given(messages=messages, cuts=cuts, pair=st.sampled_from([(S.PUSH, S.PULL), (S.DEALER, S.ROUTER)]))
def test_round_trip_any_chunking(
    messages: list[list[bytes]], cuts: list[int], pair: tuple[SocketType, SocketType]
) -> None:
    sender, receiver, handshake = connected_pair(*pair)
    wire = handshake + b"".join(bytes(c) for c in sender.encode_messages(messages))
    events, error = run(receiver, split_at(wire, cuts))
    assert error is None
    assert isinstance(events[0], HandshakeComplete)
    assert events[1:] == messages


@FAST
@given(messages=messages, batch=st.integers(min_value=1, max_value=5))
def test_round_trip_in_batches(messages: list[list[bytes]], batch: int) -> None:
    sender, receiver, handshake = connected_pair(S.PAIR, S.PAIR)
    received = receiver.receive_data(handshake)[1:]
    for i in range(0, len(messages), batch):
        for chunk in sender.encode_messages(messages[i : i + batch]):
            received += receiver.receive_data(chunk)
    assert received == messages


# A generator biased towards frames, so fuzzing gets past the first header.
_names = st.sampled_from(
    [b"PING", b"PONG", b"SUBSCRIBE", b"CANCEL", b"READY", b"ERROR", b"HELLO", b""]
)


@st.composite
def wire_frame(draw: st.DrawFn) -> bytes:
    flags = draw(st.integers(min_value=0, max_value=255))
    if flags & 4 and draw(st.booleans()):
        name = draw(_names)
        body = bytes((len(name),)) + name + draw(st.binary(max_size=30))
    else:
        body = draw(st.binary(max_size=300))
    size = len(body) + draw(st.sampled_from([0, 0, 0, 1, -1, 1000, 1 << 47, 1 << 62]))
    size = max(size, 0)
    if flags & 2:
        header = bytes((flags,)) + size.to_bytes(8, "big")
    else:
        header = bytes((flags, size & 0xFF))
    return header + body


garbage = st.lists(st.one_of(wire_frame(), st.binary(max_size=12)), max_size=12).map(b"".join)


@FAST
@given(
    data=garbage,
    cuts=cuts,
    ours=st.sampled_from([S.PUB, S.DEALER, S.SUB]),
    maxmsgsize=st.sampled_from([-1, 0, 100, 5000]),
)
def test_arbitrary_bytes_after_handshake(
    data: bytes, cuts: list[int], ours: SocketType, maxmsgsize: int
) -> None:
    peer = {S.PUB: S.SUB, S.DEALER: S.ROUTER, S.SUB: S.XPUB}[ours]
    conn = ZmtpConnection(ours, maxmsgsize=maxmsgsize)
    events, _ = run(conn, split_at(peer_handshake(peer) + data, cuts))
    assert isinstance(events[0], HandshakeComplete)


@FAST
@given(data=st.binary(max_size=300), prefix=st.sampled_from([b"", encode_greeting()[:11]]))
def test_arbitrary_bytes_from_the_start(data: bytes, prefix: bytes) -> None:
    conn = ZmtpConnection(S.ROUTER)
    run(conn, [prefix + data])
    conn = ZmtpConnection(S.ROUTER)
    run(conn, [bytes([b]) for b in prefix + data])


def _valid_stream() -> bytes:
    sender, _, handshake = connected_pair(S.DEALER, S.ROUTER)
    sender.send_ping(1.5, b"ctx")
    body = sender.encode_messages(
        [[b"id", b"", b"hello"], [bytes(300)], [b"x" * 255, b"y" * 256], [b""]]
    )
    return handshake + b"".join(bytes(c) for c in body) + b"\x04\x05\x04PONG"


VALID_STREAM = _valid_stream()

mutation = st.tuples(
    st.sampled_from(["flip", "insert", "delete", "set"]),
    st.integers(min_value=0, max_value=len(VALID_STREAM) - 1),
    st.integers(min_value=0, max_value=255),
)


@FAST
@given(mutations=st.lists(mutation, min_size=1, max_size=4), cuts=cuts)
def test_mutated_streams_are_split_invariant(
    mutations: list[tuple[str, int, int]], cuts: list[int]
) -> None:
    stream = bytearray(VALID_STREAM)
    for kind, index, value in mutations:
        index %= len(stream) or 1
        if kind == "flip":
            stream[index] ^= 1 << (value % 8)
        elif kind == "insert":
            stream.insert(index, value)
        elif kind == "delete" and stream:
            del stream[index]
        elif stream:
            stream[index] = value
    data = bytes(stream)
    whole = ZmtpConnection(S.ROUTER)
    pieces = ZmtpConnection(S.ROUTER)
    result_whole = run(whole, [data])
    result_pieces = run(pieces, split_at(data, cuts))
    # Same events and same error whatever the split, and same replies queued.
    assert result_whole == result_pieces
    assert whole.data_to_send() == pieces.data_to_send()


@FAST
@given(data=garbage, cuts=cuts)
def test_garbage_after_handshake_is_split_invariant(data: bytes, cuts: list[int]) -> None:
    stream = peer_handshake(S.SUB) + data
    assert run(ZmtpConnection(S.XPUB), [stream]) == run(
        ZmtpConnection(S.XPUB), split_at(stream, cuts)
    )
