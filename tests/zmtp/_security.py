"""Helpers shared by the security-mechanism tests (PLAIN, CURVE and their fuzzing).

They drive two sans-I/O :class:`ZmtpConnection` objects against each other:
:func:`chop` cuts bytes the way a network might, :func:`handshake` runs a whole
handshake through it while a :class:`Recorder` plays the authenticator, and
:func:`assert_dead` checks that a refused connection stays refused. The frame
builders (``frame``, ``command``, ``prop``) live in ``test_zmtp_framing``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeAlias

import pytest

from trimq._errors import RemoteProtocolError
from trimq.zmtp import AuthRequest, Event, ZmtpConnection

__all__ = [
    "SPLITS",
    "Recorder",
    "Transcript",
    "Verdict",
    "assert_dead",
    "chop",
    "deliver",
    "encoded",
    "feed",
    "handshake",
]

#: The ways :func:`chop` can cut a stream, for ``@pytest.mark.parametrize("how", SPLITS)``.
SPLITS = ["whole", "bytewise", "random0", "random1", "random2"]

#: Answers an :class:`AuthRequest` on a connection, returning the events that completes.
Verdict: TypeAlias = Callable[[ZmtpConnection, AuthRequest], list[Event]]


def chop(data: bytes, how: str, most: int = 24) -> list[bytes]:
    """Cut ``data`` into pieces: whole, one byte at a time, or at random (seeded by ``how``).

    Args:
        data: The bytes to cut.
        how: ``"whole"``, ``"bytewise"``, or any other string, which seeds
            random cuts (see :data:`SPLITS`).
        most: The largest piece a random cut makes.

    Returns:
        The pieces, in order; none for empty ``data`` (``b""`` would mean EOF).
    """
    if not data:
        return []  # b"" would mean EOF
    if how == "whole":
        return [data]
    if how == "bytewise":
        return [data[i : i + 1] for i in range(len(data))]
    rng = random.Random(how)
    pieces = []
    p = 0
    while p < len(data):
        n = rng.randint(1, most)
        pieces.append(data[p : p + n])
        p += n
    return pieces


def feed(conn: ZmtpConnection, pieces: list[bytes]) -> list[Event]:
    """Give ``conn`` each piece in turn; return all the events they produced."""
    events: list[Event] = []
    for piece in pieces:
        events += conn.receive_data(piece)
    return events


def encoded(conn: ZmtpConnection, messages: list[list[bytes]]) -> bytes:
    """The wire bytes ``conn`` produces for ``messages``, joined into one string."""
    return b"".join(bytes(chunk) for chunk in conn.encode_messages(messages))


def assert_dead(
    conn: ZmtpConnection,
    data: bytes,
    error: type[Exception],
    match: str,
    *,
    probe: bytes = b"\x00\x01x",
) -> None:
    """Feeding ``data`` raises ``error``; afterwards the connection only re-raises it.

    Args:
        conn: The connection under test.
        data: What kills it.
        error: The exception expected (a :class:`RemoteProtocolError` subclass).
        match: A regular expression the error message must match.
        probe: What is fed after the error, to see the same error come back
            (by default a one-byte data frame).
    """
    with pytest.raises(error, match=match) as first:
        conn.receive_data(data)
    assert isinstance(first.value, RemoteProtocolError)
    assert conn.error is first.value
    with pytest.raises(RemoteProtocolError) as again:
        conn.receive_data(probe)
    assert again.value is first.value


@dataclass
class Recorder:
    """Answers AuthRequests with a fixed verdict and remembers what was asked.

    A :data:`Verdict`: call it with the connection and its request.
    """

    status: int = 200
    user_id: bytes = b""
    metadata: dict[str, bytes] = field(default_factory=dict)
    requests: list[AuthRequest] = field(default_factory=list)

    def __call__(self, conn: ZmtpConnection, request: AuthRequest) -> list[Event]:
        """Record ``request`` and answer it on ``conn``; return the events that completes."""
        self.requests.append(request)
        return conn.auth_result(
            self.status, "verdict", user_id=self.user_id, metadata=self.metadata
        )


@dataclass
class Transcript:
    """What each side of a :func:`handshake` returned, and the bytes each side sent."""

    client_events: list[Event] = field(default_factory=list)
    server_events: list[Event] = field(default_factory=list)
    client_wire: bytearray = field(default_factory=bytearray)
    server_wire: bytearray = field(default_factory=bytearray)


def deliver(
    src: ZmtpConnection, dst: ZmtpConnection, how: str, verdict: Verdict, wire: bytearray
) -> list[Event]:
    """Move src's queued bytes to dst in pieces; answer AuthRequests at once.

    Args:
        src: The sending connection.
        dst: The receiving connection.
        how: How to cut the bytes (see :func:`chop`).
        verdict: Answers each :class:`AuthRequest` that ``dst`` raises.
        wire: Extended with the bytes moved.

    Returns:
        The events ``dst`` produced, the AuthRequests followed by what their
        verdicts completed.
    """
    data = src.data_to_send()
    wire += data
    events: list[Event] = []
    for piece in chop(data, how):
        got = dst.receive_data(piece)
        events += got
        for event in got:
            if isinstance(event, AuthRequest):
                events += verdict(dst, event)
    return events


def handshake(
    client: ZmtpConnection,
    server: ZmtpConnection,
    how: str = "whole",
    verdict: Verdict | None = None,
) -> Transcript:
    """Pass bytes between ``client`` and ``server`` until both complete (six rounds at most).

    Args:
        client: One side; it speaks first in each round.
        server: The other side.
        how: How to cut every batch of bytes (see :func:`chop`).
        verdict: The authenticator; a :class:`Recorder` that accepts by default.

    Returns:
        Each side's events and wire bytes. Whether the handshake completed is
        for the caller to check.
    """
    verdict = Recorder() if verdict is None else verdict
    t = Transcript()
    for _ in range(6):
        t.server_events += deliver(client, server, how, verdict, t.client_wire)
        t.client_events += deliver(server, client, how, verdict, t.server_wire)
        if client.handshake_complete and server.handshake_complete:
            break
    return t
