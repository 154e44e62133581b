"""The ZAP handler: its policy (through ``authenticate``) and serving over a socket."""

from __future__ import annotations

import errno
import ipaddress
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import zmq.auth
from zmq.utils import z85

import trimq
import trimq.auth
from trimq.auth import (
    CURVE_ALLOW_ANY,
    Authenticator,
    AuthenticatorStatistics,
    create_certificates,
    load_certificate,
)
from trimq.zmtp._keys import curve_keypair, z85_decode, z85_encode
from trimq.zmtp._zap import ZAP_ENDPOINT, ZapReply, ZapRequest

TIMEOUT = 10


def request(
    mechanism: bytes = b"NULL",
    *credentials: bytes,
    address: bytes = b"127.0.0.1",
    domain: bytes = b"",
    request_id: bytes = b"42",
) -> ZapRequest:
    return ZapRequest(request_id, domain, address, b"", mechanism, credentials)


def plain(user: bytes, password: bytes, **kwargs: bytes) -> ZapRequest:
    return request(b"PLAIN", user, password, **kwargs)


def curve(key: bytes, **kwargs: bytes) -> ZapRequest:
    return request(b"CURVE", key, **kwargs)


def new_key() -> bytes:
    """A fresh client public key, raw (as ZAP carries it)."""
    return z85_decode(curve_keypair()[0])


@pytest.fixture
def auth() -> Authenticator:
    # Policy needs no running Context: authenticate() never touches the socket.
    return Authenticator(trimq.Context())


def assert_accepted(reply: ZapReply, user_id: bytes = b"") -> None:
    assert (reply.status_code, reply.status_text, reply.user_id) == (b"200", b"OK", user_id)


def assert_refused(reply: ZapReply, reason: str) -> None:
    assert reply.status_code == b"400"
    assert reply.status_text == reason.encode()
    assert reply.user_id == b""


def test_public_api() -> None:
    assert set(trimq.auth.__all__) == {
        "Authenticator",
        "AuthenticatorStatistics",
        "CURVE_ALLOW_ANY",
        "create_certificates",
        "load_certificate",
        "load_certificates",
    }
    for name in trimq.auth.__all__:
        assert getattr(trimq.auth, name) is not None


# ------------------------------------------------------------------ addresses


def test_null_is_accepted_by_default(auth: Authenticator) -> None:
    reply = auth.authenticate(request(request_id=b"id-7"))
    assert_accepted(reply)
    assert reply.request_id == b"id-7"


@pytest.mark.parametrize(
    ("rules", "address", "accepted"),
    [
        (["127.0.0.1"], b"127.0.0.1", True),
        (["127.0.0.1"], b"127.0.0.2", False),
        (["10.0.0.0/8"], b"10.200.3.4", True),
        (["10.0.0.0/8"], b"11.0.0.1", False),
        (["192.168.1.7/24"], b"192.168.1.200", True),  # host bits ignored
        (["::1"], b"::1", True),
        (["::1"], b"127.0.0.1", False),
        (["fd00::/8"], b"fd12::5", True),
        (["127.0.0.1"], b"::ffff:127.0.0.1", True),  # IPv4 peer on a dual-stack socket
        (["fe80::/10"], b"fe80::1%eth0", True),
        (["127.0.0.1"], b"", False),  # not an IP peer
        (["127.0.0.1"], b"not an address", False),
    ],
)
def test_allow_list(auth: Authenticator, rules: list[str], address: bytes, accepted: bool) -> None:
    auth.allow(*rules)
    reply = auth.authenticate(request(address=address))
    if accepted:
        assert_accepted(reply)
    else:
        assert_refused(reply, "address not allowed")


@pytest.mark.parametrize(
    ("rules", "address", "accepted"),
    [
        (["127.0.0.1"], b"127.0.0.1", False),
        (["127.0.0.1"], b"127.0.0.2", True),
        (["10.0.0.0/8", "::1"], b"10.1.1.1", False),
        (["10.0.0.0/8", "::1"], b"::1", False),
        (["10.0.0.0/8"], b"::ffff:10.0.0.1", False),
        (["10.0.0.0/8"], b"", True),  # not an IP peer
    ],
)
def test_deny_list(auth: Authenticator, rules: list[str], address: bytes, accepted: bool) -> None:
    auth.deny(*rules)
    reply = auth.authenticate(request(address=address))
    if accepted:
        assert_accepted(reply)
    else:
        assert_refused(reply, "address denied")


def test_allow_accumulates_and_takes_ipaddress_objects(auth: Authenticator) -> None:
    auth.allow("10.0.0.1")
    auth.allow(ipaddress.ip_address("10.0.0.2"), ipaddress.ip_network("10.1.0.0/16"))
    for address in (b"10.0.0.1", b"10.0.0.2", b"10.1.2.3"):
        assert_accepted(auth.authenticate(request(address=address)))
    assert_refused(auth.authenticate(request(address=b"10.0.0.3")), "address not allowed")


def test_allow_and_deny_are_exclusive(auth: Authenticator) -> None:
    auth.allow("127.0.0.1")
    with pytest.raises(ValueError, match="not both"):
        auth.deny("10.0.0.1")
    other = Authenticator(trimq.Context())
    other.deny("10.0.0.1")
    with pytest.raises(ValueError, match="not both"):
        other.allow("127.0.0.1")


@pytest.mark.parametrize("address", ["localhost", "300.1.1.1", "10.0.0.0/33", ""])
def test_invalid_addresses_are_rejected(auth: Authenticator, address: str) -> None:
    with pytest.raises(ValueError, match="not an IP address or CIDR network"):
        auth.allow(address)


def test_address_rules_apply_before_credentials(auth: Authenticator) -> None:
    auth.configure_plain(passwords={"admin": "secret"})
    auth.configure_curve()
    auth.deny("10.0.0.0/8")
    bad = {"address": b"10.0.0.1"}
    assert_refused(auth.authenticate(plain(b"admin", b"secret", **bad)), "address denied")
    assert_refused(auth.authenticate(curve(new_key(), **bad)), "address denied")


def test_allowed_address_must_still_authenticate(auth: Authenticator) -> None:
    auth.allow("127.0.0.1")
    auth.configure_plain(passwords={"admin": "secret"})
    assert_refused(auth.authenticate(plain(b"admin", b"wrong")), "invalid username or password")
    assert_accepted(auth.authenticate(plain(b"admin", b"secret")), b"admin")


# ------------------------------------------------------------------ PLAIN


def test_plain_is_refused_until_configured(auth: Authenticator) -> None:
    assert_refused(auth.authenticate(plain(b"admin", b"secret")), "no PLAIN users for domain '*'")


def test_plain_accepts_the_right_password(auth: Authenticator) -> None:
    auth.configure_plain(passwords={"admin": "secret", "sam": "pa\u00df"})
    assert_accepted(auth.authenticate(plain(b"admin", b"secret")), b"admin")
    assert_accepted(auth.authenticate(plain(b"sam", "pa\u00df".encode())), b"sam")


@pytest.mark.parametrize(
    ("user", "password"),
    [
        (b"admin", b"wrong"),
        (b"admin", b""),
        (b"admin", b"secret "),
        (b"Admin", b"secret"),
        (b"nobody", b"secret"),
        (b"", b""),
        (b"\xff\xfe", b"secret"),  # not UTF-8
    ],
)
def test_plain_refuses_wrong_credentials(auth: Authenticator, user: bytes, password: bytes) -> None:
    auth.configure_plain(passwords={"admin": "secret"})
    # The same text for an unknown user and a wrong password: no user enumeration.
    assert_refused(auth.authenticate(plain(user, password)), "invalid username or password")


def test_plain_empty_password_is_a_password(auth: Authenticator) -> None:
    auth.configure_plain(passwords={"guest": ""})
    assert_accepted(auth.authenticate(plain(b"guest", b"")), b"guest")
    assert_refused(auth.authenticate(plain(b"guest", b"x")), "invalid username or password")


def test_plain_domains(auth: Authenticator) -> None:
    auth.configure_plain(passwords={"admin": "star"})
    auth.configure_plain("ops", {"admin": "ops"})
    assert_accepted(auth.authenticate(plain(b"admin", b"star")), b"admin")
    assert_accepted(auth.authenticate(plain(b"admin", b"star", domain=b"*")), b"admin")
    assert_accepted(auth.authenticate(plain(b"admin", b"ops", domain=b"ops")), b"admin")
    assert_refused(
        auth.authenticate(plain(b"admin", b"star", domain=b"ops")), "invalid username or password"
    )
    # "*" is the default domain, not a wildcard for unknown ones (as in pyzmq).
    assert_refused(
        auth.authenticate(plain(b"admin", b"star", domain=b"dev")),
        "no PLAIN users for domain 'dev'",
    )


def test_configure_plain_replaces_the_table(auth: Authenticator) -> None:
    auth.configure_plain(passwords={"admin": "secret"})
    auth.configure_plain(passwords={"other": "pw"})
    assert_refused(auth.authenticate(plain(b"admin", b"secret")), "invalid username or password")
    auth.configure_plain("")  # "" is "*"; no passwords: everyone refused
    assert_refused(auth.authenticate(plain(b"other", b"pw")), "invalid username or password")


def test_configure_plain_wants_str(auth: Authenticator) -> None:
    with pytest.raises(TypeError, match="must be str"):
        auth.configure_plain(passwords={"admin": b"secret"})  # type: ignore[dict-item]


def test_plain_with_malformed_credentials(auth: Authenticator) -> None:
    auth.configure_plain(passwords={"admin": "secret"})
    assert_refused(auth.authenticate(request(b"PLAIN", b"admin")), "malformed PLAIN credentials")


# ------------------------------------------------------------------ CURVE


def test_curve_is_refused_until_configured(auth: Authenticator) -> None:
    assert_refused(auth.authenticate(curve(new_key())), "no CURVE keys for domain '*'")


def test_curve_allow_any(auth: Authenticator) -> None:
    auth.configure_curve(location=CURVE_ALLOW_ANY)
    key = new_key()
    reply = auth.authenticate(curve(key))
    assert_accepted(reply, z85.encode(key))
    assert CURVE_ALLOW_ANY == "*"


def test_curve_default_location_is_allow_any(auth: Authenticator) -> None:
    auth.configure_curve()
    assert auth.authenticate(curve(new_key())).accepted


def test_curve_key_list_in_every_form(auth: Authenticator) -> None:
    public, _ = curve_keypair()
    raw, as_str, other = new_key(), new_key(), new_key()
    auth.configure_curve(location=[public, raw, z85_encode(as_str).decode()])
    for key in (z85_decode(public), raw, as_str):
        assert auth.authenticate(curve(key)).accepted
    assert_refused(auth.authenticate(curve(other)), "unknown CURVE key")


def test_curve_certificate_directory(auth: Authenticator, tmp_path: Path) -> None:
    ours, _ = create_certificates(tmp_path, "ours")
    theirs, _ = zmq.auth.create_certificates(tmp_path, "theirs")
    auth.configure_curve(location=tmp_path)
    for path in (ours, Path(theirs)):
        key = z85_decode(load_certificate(path)[0])
        assert auth.authenticate(curve(key)).accepted
    assert_refused(auth.authenticate(curve(new_key())), "unknown CURVE key")


def test_curve_directory_is_read_at_configure_time(auth: Authenticator, tmp_path: Path) -> None:
    auth.configure_curve(location=str(tmp_path))
    late, _ = create_certificates(tmp_path, "late")
    key = z85_decode(load_certificate(late)[0])
    assert_refused(auth.authenticate(curve(key)), "unknown CURVE key")
    auth.configure_curve(location=str(tmp_path))
    assert auth.authenticate(curve(key)).accepted


def test_curve_configuration_errors(auth: Authenticator, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        auth.configure_curve(location=tmp_path / "missing")
    with pytest.raises(ValueError, match="CURVE key #1"):
        auth.configure_curve(location=[new_key(), b"short"])
    with pytest.raises(TypeError, match=r"pass \[key\]"):
        auth.configure_curve(location=new_key())  # type: ignore[arg-type]


def test_curve_domains(auth: Authenticator) -> None:
    admin = new_key()
    auth.configure_curve("admin", [admin])
    assert auth.authenticate(curve(admin, domain=b"admin")).accepted
    assert_refused(auth.authenticate(curve(admin)), "no CURVE keys for domain '*'")
    assert_refused(auth.authenticate(curve(new_key(), domain=b"admin")), "unknown CURVE key")


def test_curve_user_id_can_be_overridden() -> None:
    alice = new_key()

    class Named(Authenticator):
        def curve_user_id(self, key: bytes) -> str:
            return "alice" if key == alice else "stranger"

    auth = Named(trimq.Context())
    auth.configure_curve()
    assert_accepted(auth.authenticate(curve(alice)), b"alice")
    assert_accepted(auth.authenticate(curve(new_key())), b"stranger")


def test_curve_with_malformed_credentials(auth: Authenticator) -> None:
    auth.configure_curve()
    assert_refused(auth.authenticate(curve(b"short")), "malformed CURVE credentials")


def test_unknown_mechanism_is_refused(auth: Authenticator) -> None:
    assert_refused(
        auth.authenticate(request(b"GSSAPI", b"principal")), "unsupported mechanism 'GSSAPI'"
    )


# ------------------------------------------------------------------ logging


def test_logs_refusals_at_info_and_never_passwords(
    auth: Authenticator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="trimq.auth")
    auth.configure_plain(passwords={"admin": "hunter2-correct"})
    auth.authenticate(plain(b"admin", b"hunter2-wrong", address=b"192.0.2.9"))
    auth.authenticate(plain(b"admin", b"hunter2-correct"))
    refusals = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(refusals) == 1
    message = refusals[0].getMessage()
    for part in ("PLAIN", "192.0.2.9", "invalid username or password"):
        assert part in message
    assert all("hunter2" not in r.getMessage() for r in caplog.records)
    assert any("accepted" in r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG)


# ------------------------------------------------------------------ serving


@pytest.fixture
async def ctx() -> AsyncIterator[trimq.Context]:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as context:
            yield context


async def zap_client(ctx: trimq.Context) -> trimq.Socket:
    dealer = ctx.socket(trimq.DEALER)
    await dealer.connect(ZAP_ENDPOINT)
    return dealer


async def ask(dealer: trimq.Socket, frames: list[bytes]) -> list[bytes]:
    """Send frames as a REQ would (empty delimiter first); return the reply's frames."""
    await dealer.send_multipart([b"", *frames])
    reply = await dealer.recv_multipart()
    assert reply[0] == b""
    return reply[1:]


async def test_serves_requests_through_the_socket(ctx: trimq.Context) -> None:
    async with Authenticator(ctx) as auth:
        auth.configure_plain(passwords={"admin": "secret"})
        dealer = await zap_client(ctx)
        reply = ZapReply.decode(await ask(dealer, plain(b"admin", b"secret").encode()))
        assert_accepted(reply, b"admin")
        assert reply.request_id == b"42"
        reply = ZapReply.decode(await ask(dealer, plain(b"admin", b"nope").encode()))
        assert_refused(reply, "invalid username or password")
        reply = ZapReply.decode(await ask(dealer, request(request_id=b"n").encode()))
        assert_accepted(reply)
        assert reply.request_id == b"n"
        assert auth.statistics() == AuthenticatorStatistics(accepted=2, refused=1, errors=0)


async def test_policy_changes_apply_while_serving(ctx: trimq.Context) -> None:
    async with Authenticator(ctx) as auth:
        dealer = await zap_client(ctx)
        key = new_key()
        assert ZapReply.decode(await ask(dealer, curve(key).encode())).status_code == b"400"
        auth.configure_curve(location=[key])
        assert ZapReply.decode(await ask(dealer, curve(key).encode())).accepted


async def test_client_may_connect_before_the_handler_binds(ctx: trimq.Context) -> None:
    dealer = await zap_client(ctx)
    await dealer.send_multipart([b"", *request().encode()])
    async with Authenticator(ctx):
        assert ZapReply.decode((await dealer.recv_multipart())[1:]).accepted


@pytest.mark.parametrize(
    ("frames", "request_id", "reason"),
    [
        ([b"junk"], b"", "at least 6"),
        ([b"1.0", b"id-3"], b"id-3", "at least 6"),
        ([b"2.0", b"id-4", b"", b"", b"", b"NULL"], b"id-4", "version"),
        ([b"1.0", b"id-5", b"", b"", b"", b"PLAIN", b"user"], b"id-5", "credential frames"),
        ([b"1.0", b"id-6", b"", b"", b"", b"CURVE", b"short"], b"id-6", "expected 32"),
    ],
)
async def test_malformed_requests_get_500_and_serving_goes_on(
    ctx: trimq.Context,
    caplog: pytest.LogCaptureFixture,
    frames: list[bytes],
    request_id: bytes,
    reason: str,
) -> None:
    async with Authenticator(ctx) as auth:
        dealer = await zap_client(ctx)
        reply = ZapReply.decode(await ask(dealer, frames))
        assert reply.status_code == b"500"
        assert reply.request_id == request_id
        assert reply.status_text.startswith(b"malformed ZAP request: ")
        assert reason.encode() in reply.status_text
        assert any(
            r.levelno == logging.WARNING and "malformed ZAP request" in r.getMessage()
            for r in caplog.records
        )
        # Still serving.
        assert ZapReply.decode(await ask(dealer, request().encode())).accepted
        assert auth.statistics() == AuthenticatorStatistics(accepted=1, refused=0, errors=1)


async def test_a_failing_policy_gets_500_and_serving_goes_on(
    ctx: trimq.Context, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Authenticator):
        def curve_user_id(self, key: bytes) -> str:
            raise RuntimeError("user directory is down")

    async with Broken(ctx) as auth:
        auth.configure_curve()
        dealer = await zap_client(ctx)
        reply = ZapReply.decode(await ask(dealer, curve(new_key()).encode()))
        assert (reply.status_code, reply.status_text) == (
            b"500",
            b"internal error in the ZAP handler",
        )
        assert any(r.exc_info and r.levelno == logging.ERROR for r in caplog.records)
        assert ZapReply.decode(await ask(dealer, request().encode())).accepted
        assert auth.statistics().errors == 1


async def test_one_handler_per_context(ctx: trimq.Context) -> None:
    async with Authenticator(ctx):
        with pytest.raises(OSError, match="already bound") as info:
            async with Authenticator(ctx):
                pass  # pragma: no cover
        assert info.value.errno == errno.EADDRINUSE
        # Another Context has its own inproc namespace, hence its own handler.
        async with trimq.Context() as other, Authenticator(other):
            pass


async def test_the_same_authenticator_cannot_run_twice(ctx: trimq.Context) -> None:
    auth = Authenticator(ctx)
    async with auth:
        with pytest.raises(RuntimeError, match="already running"):
            await auth.__aenter__()


async def test_leaving_unbinds_so_a_new_handler_can_start(ctx: trimq.Context) -> None:
    auth = Authenticator(ctx)
    async with auth:
        pass
    async with auth:
        dealer = await zap_client(ctx)
        assert ZapReply.decode(await ask(dealer, request().encode())).accepted


async def test_needs_a_running_context() -> None:
    with pytest.raises(trio.ClosedResourceError):
        async with Authenticator(trimq.Context()):
            pass  # pragma: no cover


async def test_stops_quietly_if_the_context_closes_its_socket(ctx: trimq.Context) -> None:
    async with Authenticator(ctx) as auth:
        await ctx.aclose()
    assert auth.statistics() == AuthenticatorStatistics(0, 0, 0)


async def test_exception_in_the_block_propagates_unwrapped(ctx: trimq.Context) -> None:
    with pytest.raises(KeyError, match="boom"):
        async with Authenticator(ctx):
            raise KeyError("boom")
    # And the endpoint was released.
    async with Authenticator(ctx):
        pass
