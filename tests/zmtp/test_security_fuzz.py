"""Fuzzing the security handshakes: PLAIN and CURVE on both sides, and NULL with ZAP.

Each scenario is a connection under test (the *subject*) and a recording of
what a well-behaved peer sends it, cut into segments at the points where the
peer waits for the subject's answer. The subject is fed either a valid prefix
of that recording followed by junk, or the whole recording with random
mutations, in random splits, answering every :class:`AuthRequest` with a
drawn ZAP status. Whatever happens, the subject may only return well-formed
events or raise :class:`RemoteProtocolError` (or a subclass), and once it has
raised, it must stay dead and raise that same error again.

CURVE recordings are replayed with :func:`copy.deepcopy`: a copy of the server
keys taken before the recorded handshake (so the recorded cookie is still
fresh), and a copy of a client taken right after it sent HELLO (so the
recorded WELCOME is boxed to its short-term key).
"""

from __future__ import annotations

import copy
import functools
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from trimq._errors import AuthenticationError, HandshakeError, RemoteProtocolError
from trimq.zmtp import (
    AuthRequest,
    Cancel,
    CurveClientMechanism,
    CurveServerKeys,
    CurveServerMechanism,
    Event,
    HandshakeComplete,
    NullMechanism,
    Ping,
    PlainClientMechanism,
    PlainServerMechanism,
    Pong,
    SocketType,
    Subscribe,
    ZmtpConnection,
    curve_keypair,
)

from .test_zmtp_framing import command, frame
from .test_zmtp_framing import ready as ready_command

S = SocketType
# Derandomized: every run tries the same examples, so a failure is never a fluke.
FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
EVENT_TYPES = (list, HandshakeComplete, AuthRequest, Ping, Pong, Subscribe, Cancel)
SERVER_PUBLIC, SERVER_SECRET = curve_keypair()
CLIENT_PUBLIC, CLIENT_SECRET = curve_keypair()
MESSAGES = [[b"id", b"", b"hello"], [bytes(300)], [b""], [b"\x01topic"]]


# ------------------------------------------------------------- recording


def accept_all(conn: ZmtpConnection, events: list[Event]) -> None:
    if any(isinstance(e, AuthRequest) for e in events):
        conn.auth_result(200, user_id=b"user")


def record(subject: ZmtpConnection, peer: ZmtpConnection) -> list[bytes]:
    """Run a handshake; return what ``peer`` sent, one segment per batch, then
    a last segment with data messages and a PING."""
    segments = []
    for _ in range(8):
        out = peer.data_to_send()
        if out:
            segments.append(out)
            accept_all(subject, subject.receive_data(out))
        back = subject.data_to_send()
        if back:
            accept_all(peer, peer.receive_data(back))
        if subject.handshake_complete and peer.handshake_complete:
            break
    assert subject.handshake_complete
    assert peer.handshake_complete
    rest = peer.data_to_send()  # e.g. a CURVE server's READY, sent after its verdict
    if rest:
        segments.append(rest)
    peer.send_ping(1.0, b"ctx")
    segments.append(
        peer.data_to_send() + b"".join(bytes(c) for c in peer.encode_messages(MESSAGES))
    )
    return segments


@dataclass(frozen=True)
class Scenario:
    make: Callable[[], ZmtpConnection]
    """A fresh subject, in the state the recording starts from."""
    segments: tuple[bytes, ...]
    """What the peer sent, cut where it waited for the subject."""
    first_after_greeting: int
    """Index of the first segment after the peer's greeting."""


def plain_server() -> Scenario:
    def make() -> ZmtpConnection:
        return ZmtpConnection(S.ROUTER, mechanism=PlainServerMechanism())

    peer = ZmtpConnection(S.DEALER, identity=b"p", mechanism=PlainClientMechanism(b"u", b"pw"))
    return Scenario(make, tuple(record(make(), peer)), 1)


def plain_client() -> Scenario:
    def make() -> ZmtpConnection:
        return ZmtpConnection(S.SUB, mechanism=PlainClientMechanism(b"user", b"password"))

    peer = ZmtpConnection(S.PUB, mechanism=PlainServerMechanism())
    return Scenario(make, tuple(record(make(), peer)), 1)


def null_zap_server() -> Scenario:
    def make() -> ZmtpConnection:
        return ZmtpConnection(S.ROUTER, mechanism=NullMechanism(authenticate=True))

    peer = ZmtpConnection(S.DEALER, identity=b"peer")
    return Scenario(make, tuple(record(make(), peer)), 1)


def null_zap_server_eager() -> Scenario:
    # A real NULL peer sends READY right behind its greeting, so both often
    # arrive in one read, before the authenticator has answered.
    s = null_zap_server()
    return Scenario(s.make, (s.segments[0] + s.segments[1], *s.segments[2:]), 1)


def curve_server() -> Scenario:
    keys = CurveServerKeys(SERVER_PUBLIC, SERVER_SECRET)
    pristine = copy.deepcopy(keys)  # same cookie key, no cookie used yet

    def make() -> ZmtpConnection:
        return ZmtpConnection(S.ROUTER, mechanism=CurveServerMechanism(copy.deepcopy(pristine)))

    peer = ZmtpConnection(
        S.DEALER,
        identity=b"p",
        mechanism=CurveClientMechanism(CLIENT_PUBLIC, CLIENT_SECRET, SERVER_PUBLIC),
    )
    subject = ZmtpConnection(S.ROUTER, mechanism=CurveServerMechanism(keys))
    return Scenario(make, tuple(record(subject, peer)), 1)


def curve_client() -> Scenario:
    client = ZmtpConnection(
        S.DEALER, mechanism=CurveClientMechanism(CLIENT_PUBLIC, CLIENT_SECRET, SERVER_PUBLIC)
    )
    peer = ZmtpConnection(
        S.ROUTER, mechanism=CurveServerMechanism(CurveServerKeys(SERVER_PUBLIC, SERVER_SECRET))
    )
    peer.receive_data(client.data_to_send())
    client.receive_data(peer.data_to_send())  # the server's greeting: the client sends HELLO
    peer.receive_data(client.data_to_send())
    snapshot = copy.deepcopy(client)  # holds the short-term key the WELCOME is boxed to

    def make() -> ZmtpConnection:
        return copy.deepcopy(snapshot)

    return Scenario(make, tuple(record(client, peer)), 0)


BUILDERS: dict[str, Callable[[], Scenario]] = {
    "plain-server": plain_server,
    "plain-client": plain_client,
    "curve-server": curve_server,
    "curve-client": curve_client,
    "null-zap-server": null_zap_server,
    "null-zap-server-eager": null_zap_server_eager,
}


@functools.cache
def scenario(name: str) -> Scenario:
    return BUILDERS[name]()


# ---------------------------------------------------------------- driving


@dataclass
class Outcome:
    events: list[Event]
    error: RemoteProtocolError | None


def check_events(events: list[Event], seen: list[Event]) -> None:
    assert isinstance(events, list)
    for ev in events:
        assert isinstance(ev, EVENT_TYPES), ev
        if isinstance(ev, list):
            assert ev
            assert all(type(f) is bytes for f in ev)
            assert any(isinstance(e, HandshakeComplete) for e in seen), "data before handshake"
        elif isinstance(ev, HandshakeComplete):
            assert not any(isinstance(e, HandshakeComplete) for e in seen), "handshake twice"
        elif isinstance(ev, AuthRequest):
            assert not any(isinstance(e, HandshakeComplete) for e in seen), "late AuthRequest"
        seen.append(ev)


def _note(outcome: str) -> None:
    # Shown by --hypothesis-show-statistics: how deep the fuzzing got.
    if currently_in_test_context():
        event(outcome)


def drive(
    conn: ZmtpConnection, segments: list[list[bytes]], status: int, auth_delay: int = 0
) -> Outcome:
    """Feed each segment's pieces, answer AuthRequests with ``status``, then EOF.

    The verdict comes ``auth_delay`` pieces after the AuthRequest (a slow
    authenticator while the peer goes on sending), or at the end of the input.
    Only events and RemoteProtocolError may come out; a dead connection must
    keep raising the error that killed it.
    """
    seen: list[Event] = []
    due = -1  # pieces to feed before answering a pending AuthRequest, -1 if none pending

    def answer() -> None:
        check_events(conn.auth_result(status, user_id=b"user"), seen)

    error: RemoteProtocolError | None = None
    try:
        for piece in [piece for pieces in segments for piece in pieces]:
            if due == 0:
                due = -1
                answer()
            elif due > 0:
                due -= 1
            events = conn.receive_data(piece)
            check_events(events, seen)
            if any(isinstance(e, AuthRequest) for e in events):
                due = auth_delay
            if due == 0:
                due = -1
                answer()
            conn.data_to_send()
        if due >= 0:
            answer()
        check_events(conn.receive_data(b""), seen)
    except RemoteProtocolError as exc:
        error = exc
    if error is None:
        _note("handshake complete" if conn.handshake_complete else "still waiting")
        return Outcome(seen, None)
    assert conn.error is error, f"{error!r} raised but the connection is not dead"
    for later in (b"\x04\x06\x05READY", b""):
        with pytest.raises(RemoteProtocolError) as again:
            conn.receive_data(later)
        assert again.value is error
    # We never refuse a peer we accepted; a peer may refuse us (by_peer).
    assert not isinstance(error, AuthenticationError) or error.by_peer or status != 200
    _note("dead after handshake" if conn.handshake_complete else "dead in handshake")
    return Outcome(seen, error)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


SCENARIOS = list(BUILDERS)
statuses = st.sampled_from([200, 200, 200, 200, 200, 300, 400, 500])
delays = st.integers(min_value=0, max_value=3)
cuts = st.lists(st.integers(min_value=0, max_value=4096), max_size=8)

COMMAND_NAMES = [
    b"HELLO", b"WELCOME", b"INITIATE", b"READY", b"ERROR", b"MESSAGE", b"PING", b"PONG",
    b"SUBSCRIBE", b"", b"X" * 40,
]  # fmt: skip
command_data = st.one_of(
    st.binary(max_size=40),
    st.binary(min_size=160, max_size=160),  # a CURVE WELCOME's size
    st.binary(min_size=194, max_size=194),  # a CURVE HELLO's size
    st.binary(min_size=248, max_size=320),  # enough for a CURVE INITIATE
    st.builds(lambda n, tail: bytes((n,)) + tail, st.integers(0, 255), st.binary(max_size=8)),
)


@st.composite
def wire_frame(draw: st.DrawFn) -> bytes:
    """A frame that is at least plausible: a (possibly mislabelled) command or data."""
    if draw(st.booleans()):
        name = draw(st.sampled_from(COMMAND_NAMES))
        body = bytes((len(name),)) + name + draw(command_data)
    else:
        body = draw(st.one_of(st.binary(max_size=40), st.just(b"\x07MESSAGE" + bytes(30))))
    flags = draw(st.sampled_from([0x04, 0x04, 0x04, 0x00, 0x01, 0x05, 0x06]))
    return frame(body, more=bool(flags & 1), command=bool(flags & 4), long=bool(flags & 2))


junk = st.one_of(
    st.binary(min_size=1, max_size=300),
    st.lists(wire_frame(), min_size=1, max_size=4).map(b"".join),
)


# ------------------------------------------------------------------- tests


@pytest.mark.parametrize("name", SCENARIOS)
@pytest.mark.parametrize("how", ["whole", "bytewise"])
def test_recordings_are_valid(name: str, how: str) -> None:
    s = scenario(name)
    pieces = [
        [seg] if how == "whole" else [seg[i : i + 1] for i in range(len(seg))] for seg in s.segments
    ]
    outcome = drive(s.make(), pieces, 200)
    assert outcome.error is None
    complete = [e for e in outcome.events if isinstance(e, HandshakeComplete)]
    assert len(complete) == 1
    assert [e for e in outcome.events if isinstance(e, list)] == MESSAGES
    assert Ping(1.0, b"ctx") in outcome.events


@pytest.mark.parametrize("name", SCENARIOS)
@FUZZ
@given(data=st.data(), garbage=junk, cut=cuts, status=statuses, delay=delays)
def test_junk_after_a_valid_prefix(
    name: str, data: st.DataObject, garbage: bytes, cut: list[int], status: int, delay: int
) -> None:
    s = scenario(name)
    keep = data.draw(st.integers(s.first_after_greeting, len(s.segments) - 1), label="keep")
    segments = [[seg] for seg in s.segments[:keep]] + [split(garbage, cut)]
    drive(s.make(), segments, status, delay)


Mutation = tuple[str, int, int]
kinds = st.sampled_from(["flip", "insert", "delete", "set", "truncate"])


def mutate(segments: tuple[bytes, ...], mutations: list[Mutation]) -> list[bytearray]:
    """Apply mutations at offsets into the concatenated segments (each hits one segment)."""
    out = [bytearray(seg) for seg in segments]
    for kind, offset, value in mutations:
        total = sum(len(seg) for seg in out)
        if not total:
            break
        offset %= total
        which = 0
        while offset >= len(out[which]):
            offset -= len(out[which])
            which += 1
        seg = out[which]
        if kind == "flip":
            seg[offset] ^= 1 << (value % 8)
        elif kind == "insert":
            seg.insert(offset, value)
        elif kind == "delete":
            del seg[offset]
        elif kind == "set":
            seg[offset] = value
        else:
            del seg[offset:]
    return out


@pytest.mark.parametrize("name", SCENARIOS)
@FUZZ
@given(data=st.data(), cut=cuts, status=statuses, delay=delays)
def test_mutated_recording(
    name: str, data: st.DataObject, cut: list[int], status: int, delay: int
) -> None:
    s = scenario(name)
    total = sum(len(seg) for seg in s.segments)
    mutation = st.tuples(kinds, st.integers(0, total - 1), st.integers(0, 255))
    mutations = data.draw(st.lists(mutation, min_size=1, max_size=4), label="mutations")
    segments = [split(bytes(seg), cut) for seg in mutate(s.segments, mutations)]
    drive(s.make(), segments, status, delay)


# ------------------------------------------------------- targeted cases


def error_command(reason: bytes) -> bytes:
    return command(b"ERROR", bytes((len(reason),)) + reason)


@pytest.mark.parametrize("name", ["plain-client", "curve-client", "plain-server"])
@pytest.mark.parametrize("reason", ["²²²".encode(), "٤٠٠".encode(), b"4\xff0"])
def test_error_reason_that_is_not_a_status(name: str, reason: bytes) -> None:
    # Three characters that str.isdigit() accepts are not necessarily a number
    # int() can read; a peer's ERROR during the handshake must still end in
    # AuthenticationError.
    s = scenario(name)
    segments = [[seg] for seg in s.segments[: s.first_after_greeting]] + [[error_command(reason)]]
    outcome = drive(s.make(), segments, 200)
    assert isinstance(outcome.error, AuthenticationError)
    assert outcome.error.by_peer


@pytest.mark.parametrize(
    ("ready", "match"),
    [
        (ready_command(b"PUB"), "ROUTER cannot talk to PUB"),
        (ready_command(b"DEALEQ"), "unknown"),
        (b"\x04\x06\x05READY", "no Socket-Type"),
    ],
    ids=["incompatible", "unknown", "missing"],
)
def test_null_zap_peer_refused_after_verdict_stays_dead(ready: bytes, match: str) -> None:
    # With ZAP, a NULL server only checks the peer's READY once the verdict is
    # in: the HandshakeError then comes from auth_result(), and must kill the
    # connection just as one from receive_data() does.
    s = scenario("null-zap-server")
    assert len(s.segments[0]) == 64  # the peer's greeting
    outcome = drive(s.make(), [[s.segments[0] + ready]], 200)
    assert isinstance(outcome.error, HandshakeError)
    assert re.search(match, str(outcome.error))
