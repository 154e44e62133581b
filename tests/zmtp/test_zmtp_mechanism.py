"""The Mechanism plug-in interface, driven by a test-only frame-wrapping mechanism.

PLAIN and CURVE are not implemented yet; this toy exercises the same hooks
CURVE will use (every frame after the handshake wrapped in a command), so the
connection's slow path is covered now.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import pytest

from trimq._errors import (
    HandshakeError,
    LocalProtocolError,
    MessageTooLargeError,
    RemoteProtocolError,
)
from trimq.zmtp import (
    FLAG_COMMAND,
    Event,
    HandshakeComplete,
    HandshakeStep,
    Mechanism,
    NullMechanism,
    Ping,
    Pong,
    SocketType,
    Subscribe,
    ZmtpConnection,
    encode_greeting,
)

S = SocketType
_WRAP = b"\x04WRAP"


class WrapMechanism(NullMechanism):
    """NULL's handshake, then every frame travels reversed inside a WRAP command
    whose first data byte holds the inner flags, much like CURVE's MESSAGE."""

    name: ClassVar[bytes] = b"XWRAP"
    transforms_frames: ClassVar[bool] = True
    frame_overhead: ClassVar[int] = len(_WRAP) + 1

    def encode_frame(self, flags: int, body: bytes) -> tuple[int, bytes]:
        return FLAG_COMMAND, _WRAP + bytes((flags,)) + body[::-1]

    def decode_frame(self, flags: int, body: bytes) -> tuple[int, bytes]:
        if not flags & FLAG_COMMAND or not body.startswith(_WRAP) or len(body) < 6:
            raise RemoteProtocolError("expected a WRAP command")
        return body[5], body[6:][::-1]


class ServerOnlyMechanism(NullMechanism):
    """Refuses peers that do not claim to be servers, to test the greeting hook."""

    def check_peer_greeting(self, *, peer_as_server: bool) -> None:
        if not peer_as_server:
            raise HandshakeError("peer must be a server")


def wrap_frame(flags: int, body: bytes) -> bytes:
    inner = _WRAP + bytes((flags,)) + body[::-1]
    assert len(inner) < 256
    return bytes((FLAG_COMMAND, len(inner))) + inner


def pair(
    a_type: SocketType = S.DEALER, b_type: SocketType = S.ROUTER, **b_kwargs: int
) -> tuple[ZmtpConnection, ZmtpConnection]:
    a = ZmtpConnection(a_type, mechanism=WrapMechanism())
    b = ZmtpConnection(b_type, mechanism=WrapMechanism(), **b_kwargs)  # type: ignore[arg-type]
    b.receive_data(a.data_to_send())
    a.receive_data(b.data_to_send())
    events = b.receive_data(a.data_to_send())
    assert isinstance(events[0], HandshakeComplete)
    assert a.handshake_complete
    assert b.handshake_complete
    return a, b


def send(a: ZmtpConnection, messages: list[list[bytes]]) -> bytes:
    return b"".join(bytes(c) for c in a.encode_messages(messages))


def test_round_trip_through_wrapping() -> None:
    a, b = pair()
    big = bytes(range(256)) * 200
    messages = [[b"hello"], [b"a", b"", big], [b""]]
    wire = send(a, messages)
    assert wire.startswith(wrap_frame(0, b"hello"))
    assert b"olleh" in wire
    assert b.receive_data(wire) == messages
    # Byte by byte as well, including the long frame.
    a2, b2 = pair()
    got: list[Event] = []
    for i, byte in enumerate(send(a2, messages)):
        got += b2.receive_data(bytes((byte,)))
        if i == 3:
            assert got == []
    assert got == messages


def test_commands_are_wrapped_after_handshake() -> None:
    a, b = pair()
    a.send_ping(2.0, b"c")
    wire = a.data_to_send()
    assert wire == wrap_frame(FLAG_COMMAND, b"\x04PING\x00\x14c")
    assert b.receive_data(wire) == [Ping(2.0, b"c")]
    pong = b.data_to_send()
    assert pong == wrap_frame(FLAG_COMMAND, b"\x04PONGc")
    assert a.receive_data(pong) == [Pong(b"c")]


def test_subscriptions_are_wrapped() -> None:
    sub, pub = pair(S.SUB, S.PUB)
    wire = send(sub, [[b"\x01news"], [b"\x00news"], [b"\x02not a subscription"]])
    assert wire.startswith(wrap_frame(FLAG_COMMAND, b"\x09SUBSCRIBEnews"))
    events = pub.receive_data(wire)
    assert events[0] == Subscribe(b"news")
    assert events[2] == [b"\x02not a subscription"]


def test_error_arrives_in_the_clear() -> None:
    a, b = pair()
    b.send_error("400")
    error = b.data_to_send()
    assert error == b"\x04\x0a\x05ERROR\x03400"
    with pytest.raises(HandshakeError, match="peer sent ERROR: 400"):
        a.receive_data(send(b, [[b"first"]]) + error)
    assert a.events_before_error == [[b"first"]]


def test_unwrapped_frame_refused() -> None:
    _, b = pair()
    with pytest.raises(RemoteProtocolError, match="expected a WRAP command"):
        b.receive_data(b"\x00\x01x")


def test_maxmsgsize_with_wrapping() -> None:
    a, b = pair(maxmsgsize=10)
    assert b.receive_data(send(a, [[b"0123456789"]])) == [[b"0123456789"]]
    # Refused from the header: 11 payload bytes + the wrapping overhead.
    with pytest.raises(MessageTooLargeError, match="maxmsgsize is 10"):
        b.receive_data(b"\x04" + bytes((11 + 6,)))
    a, b = pair(maxmsgsize=10)
    # The header check counts the multipart total too.
    with pytest.raises(MessageTooLargeError, match="at least 12 bytes"):
        b.receive_data(send(a, [[b"123456", b"123456"]]))


class LooseWrapMechanism(WrapMechanism):
    """Overstates its overhead, so only the exact check after unwrapping can refuse."""

    frame_overhead: ClassVar[int] = 100


def test_maxmsgsize_checked_exactly_after_unwrapping() -> None:
    a = ZmtpConnection(S.PUSH, mechanism=LooseWrapMechanism())
    b = ZmtpConnection(S.PULL, mechanism=LooseWrapMechanism(), maxmsgsize=10)
    b.receive_data(a.data_to_send())
    a.receive_data(b.data_to_send())
    b.receive_data(a.data_to_send())
    assert b.receive_data(send(a, [[b"12345", b"12345"]])) == [[b"12345", b"12345"]]
    with pytest.raises(MessageTooLargeError, match="at least 11 bytes"):
        b.receive_data(send(a, [[b"12345", b"123456"]]))


def test_wrapped_empty_message_refused() -> None:
    a, _ = pair()
    a.send_ping()
    queued = a.data_to_send()
    a.send_ping()
    with pytest.raises(LocalProtocolError, match="at least one frame"):
        a.encode_messages([[b"ok"], []])
    assert a.data_to_send() == queued
    assert a.encode_messages([]) == []


def test_wrapped_sub_to_30_peer_sends_data() -> None:
    sub = ZmtpConnection(S.SUB, mechanism=WrapMechanism())
    peer = ZmtpConnection(S.PUB, mechanism=WrapMechanism())
    peer.receive_data(sub.data_to_send())
    greeting_and_ready = bytearray(peer.data_to_send())
    greeting_and_ready[11] = 0  # advertise ZMTP 3.0
    sub.receive_data(bytes(greeting_and_ready))
    assert sub.peer_minor == 0
    sub.data_to_send()  # our READY
    assert send(sub, [[b"\x01t"]]) == wrap_frame(0, b"\x01t")


def test_mechanism_mismatch_names_both() -> None:
    conn = ZmtpConnection(S.DEALER, mechanism=WrapMechanism())
    with pytest.raises(HandshakeError, match="we use XWRAP, the peer uses NULL"):
        conn.receive_data(encode_greeting())


def test_check_peer_greeting_hook() -> None:
    conn = ZmtpConnection(S.DEALER, mechanism=ServerOnlyMechanism())
    with pytest.raises(HandshakeError, match="must be a server"):
        conn.receive_data(encode_greeting(as_server=False))
    conn = ZmtpConnection(S.DEALER, mechanism=ServerOnlyMechanism())
    assert conn.receive_data(encode_greeting(as_server=True)) == []


class TwoStepMechanism(Mechanism):
    """A minimal multi-command handshake: HELLO, then the peer's READY."""

    name: ClassVar[bytes] = b"XTWO"
    as_server = True

    def __init__(self) -> None:
        self.properties: Sequence[tuple[str, bytes]] = ()
        self.seen: list[bytes] = []

    def start(self, properties: Sequence[tuple[str, bytes]]) -> HandshakeStep:
        self.properties = properties
        return HandshakeStep(commands=[b"\x05HELLO"])

    def handle_command(self, name: bytes, data: bytes) -> HandshakeStep:
        self.seen.append(name)
        if name == b"HELLO":
            return HandshakeStep(commands=[b"\x05READY\x0bSocket-Type\x00\x00\x00\x04PAIR"])
        if name == b"READY":
            return HandshakeStep(peer_properties={"Socket-Type": b"PAIR", "X-Via": b"two"})
        raise HandshakeError(f"unexpected {name!r}")


def test_custom_multi_step_handshake() -> None:
    mech_a, mech_b = TwoStepMechanism(), TwoStepMechanism()
    a = ZmtpConnection(S.PAIR, mechanism=mech_a)
    b = ZmtpConnection(S.PAIR, mechanism=mech_b)
    greeting = a.data_to_send()
    assert greeting[32] == 1  # as-server flag from the mechanism
    assert greeting[12:32].rstrip(b"\0") == b"XTWO"
    b.receive_data(greeting)
    a.receive_data(b.data_to_send())
    b_events = b.receive_data(a.data_to_send())
    a_events = a.receive_data(b.data_to_send())
    assert (
        a_events
        == b_events
        == [
            HandshakeComplete(
                peer_socket_type=S.PAIR,
                peer_identity=b"",
                peer_metadata={"Socket-Type": b"PAIR", "X-Via": b"two"},
                peer_minor=1,
                mechanism=b"XTWO",
            )
        ]
    )
    assert mech_a.seen == [b"HELLO", b"READY"]
    assert mech_a.properties == [("Socket-Type", b"PAIR")]
    # Default hooks are the identity; the fast path never calls them.
    assert mech_a.encode_frame(1, b"x") == (1, b"x")
    assert mech_a.decode_frame(1, b"x") == (1, b"x")
    assert b.receive_data(send(a, [[b"data"]])) == [[b"data"]]
