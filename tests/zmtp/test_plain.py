"""The PLAIN mechanism (rfc 24) between two sans-I/O connections, and hostile PLAIN peers.

Every handshake here runs whole, one byte at a time and in random splits; the
driver answers each :class:`AuthRequest` the way a socket's ZAP client would.
"""

from __future__ import annotations

import functools

import pytest

from trimq._errors import (
    AuthenticationError,
    HandshakeError,
    LocalProtocolError,
    RemoteProtocolError,
)
from trimq.zmtp import (
    AuthRequest,
    HandshakeComplete,
    PlainClientMechanism,
    PlainServerMechanism,
    SocketType,
    ZmtpConnection,
    encode_greeting,
)

from . import _security
from ._security import SPLITS, Recorder, chop, encoded, feed, handshake
from .test_zmtp_framing import command, frame, prop

S = SocketType
# plain_pair's client has a 3-byte identity, which libzmq-style padding reflects.
CLIENT_GREETING = encode_greeting(b"PLAIN", as_server=False, identity_size=3)
SERVER_GREETING = encode_greeting(b"PLAIN", as_server=True)


# ------------------------------------------------------------------ helpers


def hello(username: bytes, password: bytes) -> bytes:
    return command(
        b"HELLO", bytes((len(username),)) + username + bytes((len(password),)) + password
    )


def plain_pair(
    username: bytes = b"admin",
    password: bytes = b"secret",
    *,
    client_type: SocketType = S.DEALER,
    server_type: SocketType = S.ROUTER,
) -> tuple[ZmtpConnection, ZmtpConnection]:
    client = ZmtpConnection(
        client_type,
        identity=b"cli",
        mechanism=PlainClientMechanism(username, password),
        metadata={"X-Client": b"c"},
    )
    server = ZmtpConnection(server_type, mechanism=PlainServerMechanism())
    return client, server


def server_after_hello(username: bytes = b"admin", password: bytes = b"secret") -> ZmtpConnection:
    """A PLAIN server that has taken a client's HELLO and awaits our verdict."""
    server = ZmtpConnection(S.ROUTER, mechanism=PlainServerMechanism())
    events = server.receive_data(CLIENT_GREETING + hello(username, password))
    assert events == [AuthRequest(b"PLAIN", (username, password))]
    assert server.data_to_send() == SERVER_GREETING
    return server


# A dead PLAIN connection is probed with a READY command rather than data.
assert_dead = functools.partial(_security.assert_dead, probe=b"\x04\x06\x05READY")


# ----------------------------------------------------------- the handshake


@pytest.mark.parametrize("how", SPLITS)
def test_handshake_accepted(how: str) -> None:
    client, server = plain_pair()
    zap = Recorder(user_id=b"admin-id", metadata={"X-Zap": b"granted"})
    t = handshake(client, server, how, zap)

    assert zap.requests == [AuthRequest(b"PLAIN", (b"admin", b"secret"))]
    server_metadata = {
        "Socket-Type": b"DEALER",
        "Identity": b"cli",
        "X-Client": b"c",
        "X-Zap": b"granted",
        "User-Id": b"admin-id",
    }
    assert t.server_events == [
        zap.requests[0],
        HandshakeComplete(
            peer_socket_type=S.DEALER,
            peer_identity=b"cli",
            peer_metadata=server_metadata,
            peer_minor=1,
            mechanism=b"PLAIN",
            user_id=b"admin-id",
            peer_key=None,
        ),
    ]
    assert server.peer_metadata == server_metadata
    assert t.client_events == [
        HandshakeComplete(
            peer_socket_type=S.ROUTER,
            peer_identity=b"",
            peer_metadata={"Socket-Type": b"ROUTER", "Identity": b""},
            peer_minor=1,
            mechanism=b"PLAIN",
            user_id=b"",
            peer_key=None,
        )
    ]
    assert client.handshake_complete
    assert server.handshake_complete

    # Messages flow both ways afterwards, in the same splits.
    messages = [[b"hello"], [b"a", b"", bytes(300)], [b""]]
    assert feed(server, chop(encoded(client, messages), how)) == messages
    assert feed(client, chop(encoded(server, [[b"cli", b"reply"]]), how)) == [[b"cli", b"reply"]]


def test_wire_bytes() -> None:
    client, server = plain_pair(client_type=S.PUSH, server_type=S.PULL)
    t = handshake(client, server, "whole", Recorder())
    assert bytes(t.client_wire) == (
        CLIENT_GREETING
        + hello(b"admin", b"secret")
        + command(b"INITIATE", prop(b"Socket-Type", b"PUSH") + prop(b"X-Client", b"c"))
    )
    assert bytes(t.server_wire) == (
        SERVER_GREETING + command(b"WELCOME") + command(b"READY", prop(b"Socket-Type", b"PULL"))
    )


def test_greetings_carry_the_as_server_flag() -> None:
    client, server = plain_pair()
    client_greeting, server_greeting = client.data_to_send(), server.data_to_send()
    assert (client_greeting, server_greeting) == (CLIENT_GREETING, SERVER_GREETING)
    assert client_greeting[12:32].rstrip(b"\x00") == server_greeting[12:32].rstrip(b"\x00")
    assert client_greeting[12:17] == b"PLAIN"
    assert (client_greeting[32], server_greeting[32]) == (0, 1)
    assert client.waiting_for == "the peer's greeting"


@pytest.mark.parametrize(
    ("username", "password"), [(b"", b""), (b"u" * 255, b"p" * 255), (b"\x00\xff", b"\x05HELLO")]
)
def test_edge_credentials_accepted(username: bytes, password: bytes) -> None:
    client, server = plain_pair(username, password)
    zap = Recorder()
    handshake(client, server, "random0", zap)
    assert zap.requests == [AuthRequest(b"PLAIN", (username, password))]
    assert client.handshake_complete
    assert server.handshake_complete


@pytest.mark.parametrize(("username", "password"), [(b"u" * 256, b""), (b"", b"p" * 256)])
def test_credentials_over_255_bytes_refused_locally(username: bytes, password: bytes) -> None:
    with pytest.raises(LocalProtocolError, match="at most 255"):
        PlainClientMechanism(username, password)


def test_accept_without_user_id_adds_no_user_id() -> None:
    client, server = plain_pair()
    t = handshake(client, server, "whole", Recorder())
    complete = t.server_events[-1]
    assert isinstance(complete, HandshakeComplete)
    assert complete.user_id == b""
    assert "User-Id" not in complete.peer_metadata


# ------------------------------------------------------------------ refusal


@pytest.mark.parametrize("how", SPLITS)
@pytest.mark.parametrize("status", [400, 500])
def test_refused_with_error(how: str, status: int) -> None:
    client, server = plain_pair()
    # Greetings, then the client's HELLO.
    feed(server, chop(client.data_to_send(), how))
    feed(client, chop(server.data_to_send(), how))
    events = feed(server, chop(client.data_to_send(), how))
    assert events == [AuthRequest(b"PLAIN", (b"admin", b"secret"))]

    with pytest.raises(AuthenticationError, match=f"refused the peer \\({status}: bad") as refused:
        server.auth_result(status, "bad password")
    assert refused.value.status_code == status
    assert not refused.value.by_peer
    error = server.data_to_send()
    assert error == command(b"ERROR", b"\x03" + str(status).encode())
    assert server.error is refused.value
    with pytest.raises(AuthenticationError) as again:
        server.receive_data(b"\x04\x02\x01X")
    assert again.value is refused.value
    with pytest.raises(LocalProtocolError, match="no authentication pending"):
        server.auth_result(200)

    with pytest.raises(AuthenticationError, match=f"ERROR '{status}'") as by_peer:
        feed(client, chop(error, how))
    assert by_peer.value.by_peer
    assert by_peer.value.status_code == status
    assert client.error is by_peer.value
    assert not client.handshake_complete


def test_refused_with_300_sends_no_error() -> None:
    server = server_after_hello()
    with pytest.raises(AuthenticationError) as refused:
        server.auth_result(b"300", "try later")
    assert refused.value.status_code == 300
    assert server.data_to_send() == b""
    assert server.error is refused.value


def test_client_reads_libzmq_43s_short_error() -> None:
    client, _ = plain_pair()
    client.receive_data(SERVER_GREETING)
    # libzmq 4.3's PLAIN server replaces "\x05E" of the name with one byte.
    with pytest.raises(AuthenticationError, match="ERROR '400'") as refused:
        client.receive_data(b"\x04\x09\x00RROR\x03400")
    assert refused.value.status_code == 400
    assert refused.value.by_peer


@pytest.mark.parametrize("reason", ["²²²", "①②③", "x4 "])
def test_error_with_a_non_status_reason(reason: str) -> None:
    # A hostile server's ERROR reason is free text: three characters that are
    # not ASCII digits are not a ZAP status code, and must not crash the parser.
    client, _ = plain_pair()
    client.receive_data(SERVER_GREETING)
    raw = reason.encode()
    with pytest.raises(AuthenticationError, match="peer refused the handshake") as refused:
        client.receive_data(command(b"ERROR", bytes((len(raw),)) + raw))
    assert refused.value.status_code == 0
    assert refused.value.by_peer
    assert client.error is refused.value


def test_auth_result_without_a_request() -> None:
    client, server = plain_pair()
    with pytest.raises(LocalProtocolError, match="no authentication pending"):
        server.auth_result(200)
    handshake(client, server, "whole", Recorder())
    with pytest.raises(LocalProtocolError, match="no authentication pending"):
        server.auth_result(200)


# --------------------------------------------------------- malformed HELLO


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "without credentials"),
        (b"\x05adm", "username is truncated"),
        (b"\x05admin", "username is truncated"),
        (b"\xffadmin\x06secret", "username is truncated"),
        (b"\x05admin\x06secretX", "password length does not match"),
        (b"\x05admin\x07secret", "password length does not match"),
        (b"\x05admin\x05secret", "password length does not match"),
        (b"\x05admin\x00\x00", "password length does not match"),
    ],
    ids=["empty", "short-username", "no-password-length", "username-lies", "trailing",
         "password-too-long", "password-too-short", "two-passwords"],
)  # fmt: skip
@pytest.mark.parametrize("how", ["whole", "bytewise"])
def test_malformed_hello(data: bytes, match: str, how: str) -> None:
    server = ZmtpConnection(S.ROUTER, mechanism=PlainServerMechanism())
    stream = CLIENT_GREETING + command(b"HELLO", data)
    pieces = chop(stream, how)
    with pytest.raises(HandshakeError, match=match) as refused:
        feed(server, pieces)
    assert server.error is refused.value
    with pytest.raises(HandshakeError) as again:
        server.receive_data(hello(b"admin", b"secret"))
    assert again.value is refused.value


# -------------------------------------------------------- out-of-order commands


def test_welcome_with_data_refused() -> None:
    client, _ = plain_pair()
    client.receive_data(SERVER_GREETING)
    assert client.data_to_send() == CLIENT_GREETING + hello(b"admin", b"secret")
    assert_dead(client, command(b"WELCOME", b"x"), HandshakeError, "WELCOME with 1 bytes")


def test_initiate_before_hello_refused() -> None:
    server = ZmtpConnection(S.ROUTER, mechanism=PlainServerMechanism())
    data = CLIENT_GREETING + command(b"INITIATE", prop(b"Socket-Type", b"DEALER"))
    assert_dead(
        server, data, HandshakeError, "sent INITIATE where the PLAIN handshake expects HELLO"
    )


def test_initiate_before_welcome_refused() -> None:
    # The client did not wait for WELCOME: the server is still authenticating.
    server = server_after_hello()
    assert_dead(
        server,
        command(b"INITIATE", prop(b"Socket-Type", b"DEALER")),
        HandshakeError,
        "INITIATE where the PLAIN handshake expects nothing while authenticating",
    )
    assert server.data_to_send() == b""  # no WELCOME was ever sent


def test_hello_twice_while_authenticating() -> None:
    server = server_after_hello()
    assert_dead(server, hello(b"admin", b"secret"), HandshakeError, "sent HELLO where")
    with pytest.raises(LocalProtocolError):
        server.auth_result(200)


def test_hello_twice_after_welcome() -> None:
    server = server_after_hello()
    assert server.auth_result(200) == []
    assert server.data_to_send() == command(b"WELCOME")
    expected = "HELLO where the PLAIN handshake expects INITIATE"
    assert_dead(server, hello(b"admin", b"secret"), HandshakeError, expected)


@pytest.mark.parametrize(
    "body",
    [command(b"PING", b"\x00\x00"), command(b"READY", prop(b"Socket-Type", b"DEALER"))],
    ids=["PING", "READY"],
)
def test_command_while_authentication_pending(body: bytes) -> None:
    server = server_after_hello()
    assert server.waiting_for == "our authenticator's verdict"
    assert_dead(server, body, HandshakeError, "expects nothing while authenticating")


def test_data_before_ready_refused_by_server() -> None:
    server = server_after_hello()
    assert_dead(server, frame(b"early"), HandshakeError, "data before the handshake completed")


def test_data_before_ready_refused_by_client() -> None:
    client, _ = plain_pair()
    client.receive_data(SERVER_GREETING + command(b"WELCOME"))
    sent = client.data_to_send()
    assert sent.startswith(CLIENT_GREETING + hello(b"admin", b"secret") + b"\x04")
    assert b"INITIATE" in sent
    assert_dead(client, frame(b"early"), HandshakeError, "data before the handshake completed")


def test_data_frame_instead_of_hello_refused() -> None:
    server = ZmtpConnection(S.ROUTER, mechanism=PlainServerMechanism())
    assert_dead(server, CLIENT_GREETING + frame(b"x"), HandshakeError, "expected a PLAIN")


def test_ready_before_welcome_refused_by_client() -> None:
    client, _ = plain_pair()
    client.receive_data(SERVER_GREETING)
    assert_dead(
        client,
        command(b"READY", prop(b"Socket-Type", b"ROUTER")),
        HandshakeError,
        "READY where the PLAIN handshake expects WELCOME",
    )


def test_command_with_more_flag_refused() -> None:
    server = ZmtpConnection(S.ROUTER, mechanism=PlainServerMechanism())
    body = b"\x05HELLO\x00\x00"
    assert_dead(
        server, CLIENT_GREETING + frame(body, command=True, more=True), RemoteProtocolError, "MORE"
    )


def test_malformed_initiate_metadata_refused() -> None:
    server = server_after_hello()
    server.auth_result(200)
    assert_dead(
        server, command(b"INITIATE", b"\x0bSocket-Type\x00\x00"), HandshakeError, "truncated"
    )


def test_incompatible_socket_type_in_initiate_refused() -> None:
    server = server_after_hello()
    server.auth_result(200)
    assert_dead(
        server,
        command(b"INITIATE", prop(b"Socket-Type", b"PUB")),
        HandshakeError,
        "ROUTER cannot talk to PUB",
    )


def test_malformed_ready_refused_by_client() -> None:
    client, _ = plain_pair()
    client.receive_data(SERVER_GREETING + command(b"WELCOME"))
    assert_dead(client, command(b"READY", b"\x0bSocket"), HandshakeError, "truncated")


# ---------------------------------------------------------- roles and peers


def test_two_plain_servers_detected() -> None:
    a = ZmtpConnection(S.DEALER, mechanism=PlainServerMechanism())
    b = ZmtpConnection(S.ROUTER, mechanism=PlainServerMechanism())
    assert_dead(a, b.data_to_send(), HandshakeError, "both sides are PLAIN servers")


def test_two_plain_clients_detected() -> None:
    a, _ = plain_pair()
    b, _ = plain_pair()
    a_greeting, b_greeting = a.data_to_send(), b.data_to_send()
    a.receive_data(b_greeting)
    assert a.data_to_send() == hello(b"admin", b"secret")
    assert_dead(
        b, a_greeting + hello(b"admin", b"secret"), HandshakeError, "both sides are PLAIN clients"
    )


def test_null_peer_refused() -> None:
    server = ZmtpConnection(S.ROUTER, mechanism=PlainServerMechanism())
    assert_dead(server, encode_greeting(), HandshakeError, "we use PLAIN, the peer uses NULL")


def test_peer_closing_during_the_handshake() -> None:
    server = ZmtpConnection(S.ROUTER, mechanism=PlainServerMechanism())
    server.receive_data(CLIENT_GREETING + hello(b"a", b"b")[:5])
    with pytest.raises(RemoteProtocolError, match="mid-frame"):
        server.receive_data(b"")
