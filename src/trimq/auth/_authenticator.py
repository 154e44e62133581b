"""A ZAP handler (rfc 27) running as a trio task, with pyzmq's authentication policy."""

from __future__ import annotations

import errno
import hmac
import ipaddress
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio

from ..zmtp import SocketType
from ..zmtp._keys import CURVE_KEY_SIZE, curve_key, z85_encode
from ..zmtp._zap import ZAP_ENDPOINT, ZapError, ZapReply, ZapRequest
from ._certs import load_certificates

if TYPE_CHECKING:
    from ..patterns import Context, Socket

__all__ = ["CURVE_ALLOW_ANY", "Authenticator", "AuthenticatorStatistics"]

log = logging.getLogger("trimq.auth")

CURVE_ALLOW_ANY: Final = "*"
"""``configure_curve`` location that accepts every client completing the CURVE handshake."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
AddressSpec = str | IPAddress | IPNetwork
KeySpec = bytes | bytearray | memoryview | str


@attrs.frozen
class AuthenticatorStatistics:
    """Counts of the requests an :class:`Authenticator` has answered.

    Attributes:
        accepted: Requests answered 200.
        refused: Requests answered 300 or 400.
        errors: Requests answered 500: malformed, or the policy raised.
    """

    accepted: int
    refused: int
    errors: int


class _Refused(Exception):
    """Internal: the policy refuses the request for this reason (sent as status text)."""


class Authenticator:
    """Answers a Context's authentication requests (a ZAP handler, rfc 27).

    Run it as ``async with trimq.auth.Authenticator(ctx) as auth:``; while the
    block runs it serves ZAP requests from every socket of ``ctx``. Policy
    follows pyzmq's ``zmq.auth.Authenticator``:

    * Addresses: with :meth:`allow`, only the listed addresses get through;
      with :meth:`deny`, the listed ones are refused. This applies to every
      mechanism, before credentials are checked.
    * NULL: accepted unless the address is refused.
    * PLAIN: refused until :meth:`configure_plain` gives the domain's users.
    * CURVE: refused until :meth:`configure_curve` gives the domain's keys
      (or :data:`CURVE_ALLOW_ANY`).

    A request's domain is the server socket's ``zap_domain``, empty meaning
    ``"*"``. A domain is matched exactly: ``"*"`` is the default domain, not a
    wildcard for others. Policy may change while the handler runs. Subclasses
    may override :meth:`authenticate` or :meth:`curve_user_id`.
    """

    def __init__(self, context: Context) -> None:
        """Prepare a handler for ``context``; it starts serving on ``async with``.

        Args:
            context: The running Context whose sockets it authenticates.
        """
        self._context = context
        self._allowed: list[IPNetwork] = []
        self._denied: list[IPNetwork] = []
        self._passwords: dict[str, dict[str, bytes]] = {}
        self._curve: dict[str, frozenset[bytes] | None] = {}  # None: any key
        self._socket: Socket | None = None
        self._nursery_cm: Any = None
        self._nursery: trio.Nursery | None = None
        self._accepted = self._refused = self._errors = 0

    # ------------------------------------------------------------------ policy

    def allow(self, *addresses: AddressSpec) -> None:
        """Accept only peers from these IP addresses or networks.

        Args:
            *addresses: Addresses (``"127.0.0.1"``, ``"::1"``) or CIDR networks
                (``"10.0.0.0/8"``; host bits are ignored).

        Raises:
            ValueError: An address is not valid, or :meth:`deny` was used:
                the two are exclusive, as in pyzmq.
        """
        if self._denied:
            raise ValueError("use allow() or deny(), not both (as in pyzmq)")
        self._allowed += [_network(a) for a in addresses]
        log.debug("ZAP allowing %s", ", ".join(map(str, addresses)))

    def deny(self, *addresses: AddressSpec) -> None:
        """Refuse peers from these IP addresses or networks.

        Args:
            *addresses: Addresses or CIDR networks, as for :meth:`allow`.

        Raises:
            ValueError: An address is not valid, or :meth:`allow` was used.
        """
        if self._allowed:
            raise ValueError("use allow() or deny(), not both (as in pyzmq)")
        self._denied += [_network(a) for a in addresses]
        log.debug("ZAP denying %s", ", ".join(map(str, addresses)))

    def configure_plain(
        self, domain: str = "*", passwords: Mapping[str, str] | None = None
    ) -> None:
        """Set the PLAIN users of a domain, replacing any set before.

        Args:
            domain: The ``zap_domain`` this applies to; ``"*"`` (or ``""``) is
                the default domain.
            passwords: Username to password. None or empty refuses everyone.

        Raises:
            TypeError: A username or password is not a str.
        """
        table: dict[str, bytes] = {}
        for user, password in (passwords or {}).items():
            if not isinstance(user, str) or not isinstance(password, str):
                raise TypeError("PLAIN usernames and passwords must be str")
            table[user] = password.encode()
        self._passwords[domain or "*"] = table
        log.debug("ZAP PLAIN domain %r: %d users", domain or "*", len(table))

    def configure_curve(
        self,
        domain: str = "*",
        location: str | os.PathLike[str] | Iterable[KeySpec] = CURVE_ALLOW_ANY,
    ) -> None:
        """Set the CURVE clients a domain accepts, replacing any set before.

        Args:
            domain: The ``zap_domain`` this applies to; ``"*"`` (or ``""``) is
                the default domain.
            location: :data:`CURVE_ALLOW_ANY`; a directory of ``*.key``
                certificates, read now (call again after changing it); or
                public keys, each 32 raw bytes or 40 characters of Z85.

        Raises:
            ValueError: The directory is missing or holds an invalid
                certificate, or a key is invalid.
            TypeError: ``location`` is a single bytes key (wrap it in a list).
        """
        keys: frozenset[bytes] | None
        if isinstance(location, str) and location == CURVE_ALLOW_ANY:
            keys = None
        elif isinstance(location, str | os.PathLike):
            keys = frozenset(curve_key(k) for k in load_certificates(location))
        elif isinstance(location, bytes | bytearray | memoryview):
            raise TypeError("configure_curve takes an iterable of keys: pass [key], not key")
        else:
            keys = frozenset(curve_key(k, f"CURVE key #{i}") for i, k in enumerate(location))
        self._curve[domain or "*"] = keys
        count = "any key" if keys is None else f"{len(keys)} keys"
        log.debug("ZAP CURVE domain %r: %s", domain or "*", count)

    def curve_user_id(self, key: bytes) -> str:
        """The User-Id to give an accepted CURVE client. Override to map keys to names.

        Args:
            key: The client's 32-byte public key.

        Returns:
            The key as Z85 text, unless overridden.
        """
        return z85_encode(key).decode("ascii")

    def authenticate(self, request: ZapRequest) -> ZapReply:
        """Decide one request with the configured policy. Needs no socket.

        Args:
            request: The decoded request.

        Returns:
            A 200 reply with the User-Id (PLAIN: the username; CURVE:
            :meth:`curve_user_id`; NULL: empty), or a 400 reply whose status
            text says why.
        """
        mechanism = request.mechanism.decode("ascii", "replace")
        address = request.address.decode("ascii", "replace")
        domain = request.domain.decode("utf-8", "replace") or "*"
        try:
            self._check_address(address)
            user_id = self._check_mechanism(request, domain)
        except _Refused as exc:
            log.info("ZAP refused %s from %r (domain %r): %s", mechanism, address, domain, exc)
            return ZapReply(request.request_id, b"400", str(exc).encode())
        log.debug("ZAP accepted %s from %r (domain %r) as %r", mechanism, address, domain, user_id)
        return ZapReply(request.request_id, b"200", b"OK", user_id)

    def statistics(self) -> AuthenticatorStatistics:
        """A snapshot of the counts of requests answered through the socket."""
        return AuthenticatorStatistics(self._accepted, self._refused, self._errors)

    def _check_address(self, address: str) -> None:
        ip = _parse_ip(address)
        if self._allowed and not _matches(ip, self._allowed):
            raise _Refused("address not allowed")
        if _matches(ip, self._denied):
            raise _Refused("address denied")

    def _check_mechanism(self, request: ZapRequest, domain: str) -> bytes:
        if request.mechanism == b"NULL":
            return b""
        if request.mechanism == b"PLAIN":
            return self._check_plain(domain, request.credentials)
        if request.mechanism == b"CURVE":
            return self._check_curve(domain, request.credentials)
        raise _Refused(f"unsupported mechanism {request.mechanism.decode('ascii', 'replace')!r}")

    def _check_plain(self, domain: str, credentials: Sequence[bytes]) -> bytes:
        if len(credentials) != 2:
            raise _Refused("malformed PLAIN credentials")
        if domain not in self._passwords:
            raise _Refused(f"no PLAIN users for domain {domain!r}")
        username, password = credentials
        try:
            expected = self._passwords[domain].get(username.decode())
        except UnicodeDecodeError:
            expected = None
        # Compare even for an unknown user, so timing does not reveal which users exist.
        matched = hmac.compare_digest(password, expected if expected is not None else b"\0")
        if expected is None or not matched:
            raise _Refused("invalid username or password")
        return username

    def _check_curve(self, domain: str, credentials: Sequence[bytes]) -> bytes:
        if len(credentials) != 1 or len(credentials[0]) != CURVE_KEY_SIZE:
            raise _Refused("malformed CURVE credentials")
        if domain not in self._curve:
            raise _Refused(f"no CURVE keys for domain {domain!r}")
        keys, key = self._curve[domain], credentials[0]
        if keys is not None and key not in keys:
            raise _Refused("unknown CURVE key")
        return self.curve_user_id(key).encode()

    # ------------------------------------------------------------------ serving

    async def __aenter__(self) -> Authenticator:
        """Bind the ZAP socket in the Context and start answering.

        Raises:
            OSError: Another ZAP handler is already bound in this Context.
            trio.ClosedResourceError: The Context is not running.
            RuntimeError: This Authenticator is already running.
        """
        if self._socket is not None:
            raise RuntimeError("this Authenticator is already running")
        sock = self._context.socket(SocketType.REP)
        try:
            await sock.bind(ZAP_ENDPOINT)
        except OSError as exc:
            await sock.aclose(0)
            if exc.errno != errno.EADDRINUSE:
                raise
            raise OSError(
                errno.EADDRINUSE,
                f"a ZAP handler is already bound at {ZAP_ENDPOINT} in this Context: "
                "run one Authenticator per Context",
            ) from exc
        self._socket = sock
        self._nursery_cm = trio.open_nursery()
        self._nursery = await self._nursery_cm.__aenter__()
        self._nursery.start_soon(self._serve, sock)
        log.debug("ZAP handler bound at %s", ZAP_ENDPOINT)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        """Stop answering and close the ZAP socket."""
        assert self._nursery is not None
        assert self._socket is not None
        try:
            self._nursery.cancel_scope.cancel()
            # As in Context: the block's own exception propagates unwrapped.
            await self._nursery_cm.__aexit__(None, None, None)
        finally:
            self._nursery = self._nursery_cm = None
            sock, self._socket = self._socket, None
            with trio.CancelScope(shield=True):
                await sock.aclose(0)
            log.debug("ZAP handler stopped")
        return False

    async def _serve(self, sock: Socket) -> None:
        try:
            while True:
                frames = await sock.recv_multipart()
                await sock.send_multipart(self._answer(frames).encode())
        except trio.ClosedResourceError:
            # Somebody closed the Context (or our socket) under us: stop quietly.
            log.debug("ZAP socket closed; handler stopped")

    def _answer(self, frames: Sequence[bytes]) -> ZapReply:
        """Turn any request, even a malformed one, into a reply (REP must reply)."""
        try:
            request = ZapRequest.decode(frames)
        except ZapError as exc:
            self._errors += 1
            log.warning("malformed ZAP request: %s", exc)
            request_id = bytes(frames[1]) if len(frames) > 1 else b""
            return ZapReply(request_id, b"500", f"malformed ZAP request: {exc}".encode())
        try:
            reply = self.authenticate(request)
        except Exception:
            self._errors += 1
            log.exception("ZAP policy failed on a request from %r", request.address)
            return ZapReply(request.request_id, b"500", b"internal error in the ZAP handler")
        if reply.accepted:
            self._accepted += 1
        elif reply.status_code == b"500":
            self._errors += 1
        else:
            self._refused += 1
        return reply


def _network(address: AddressSpec) -> IPNetwork:
    try:
        return ipaddress.ip_network(address, strict=False)
    except ValueError:
        raise ValueError(f"{str(address)!r} is not an IP address or CIDR network") from None


def _parse_ip(text: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None  # not an IP peer (e.g. ipc): matches no address rule
    # A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _matches(ip: IPAddress | None, networks: Iterable[IPNetwork]) -> bool:
    return ip is not None and any(ip in net for net in networks)
