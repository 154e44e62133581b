"""Socket options, with libzmq's names and defaults (times in milliseconds)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

from .zmtp._keys import curve_key

__all__ = ["SocketOptions", "check_names"]


def _bytes_or_none(attr: attrs.Attribute[bytes | None], value: object) -> None:
    if value is not None and not isinstance(value, bytes):
        raise TypeError(f"{attr.name} must be bytes or None, got {type(value).__name__}")


def _non_negative(_inst: object, attr: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ValueError(f"{attr.name} must be >= 0, got {value}")


def _at_least_minus_one(_inst: object, attr: attrs.Attribute[int], value: int) -> None:
    if value < -1:
        raise ValueError(f"{attr.name} must be >= -1 (-1 means 'unset'), got {value}")


def _routing_id(_inst: object, _attr: attrs.Attribute[bytes], value: bytes) -> None:
    if len(value) > 255:
        raise ValueError(f"routing_id is at most 255 bytes, got {len(value)}")
    if value.startswith(b"\0"):
        raise ValueError("routing_id must not start with a zero byte (reserved for ROUTER)")


def _to_bytes(value: bytes | bytearray | memoryview | str) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def _to_bytes_or_none(value: bytes | bytearray | memoryview | str | None) -> bytes | None:
    return None if value is None else _to_bytes(value)


def _credential(_inst: object, attr: attrs.Attribute[bytes | None], value: bytes | None) -> None:
    if value is not None and len(value) > 255:
        raise ValueError(f"{attr.name} is at most 255 bytes (PLAIN's limit), got {len(value)}")


KeyInput = bytes | bytearray | memoryview | str | None


def _public_key(value: KeyInput) -> bytes | None:
    return None if value is None else curve_key(value, "curve_publickey")


def _secret_key(value: KeyInput) -> bytes | None:
    return None if value is None else curve_key(value, "curve_secretkey")


def _server_key(value: KeyInput) -> bytes | None:
    return None if value is None else curve_key(value, "curve_serverkey")


_int = attrs.validators.instance_of(int)


def _boolean(_inst: object, attr: attrs.Attribute[bool], value: object) -> None:
    # 0 and 1 pass too: pyzmq code sets flags that way (sock.curve_server = 1).
    if not isinstance(value, int) or value not in (0, 1):
        raise TypeError(f"{attr.name} must be True or False, got {value!r}")


def _flag() -> Any:
    return attrs.field(default=False, validator=_boolean)


def check_names(options: Mapping[str, object]) -> None:
    """Refuse unknown option names, listing the known ones.

    Raises:
        TypeError: A name is not a socket option.
    """
    names = attrs.fields_dict(SocketOptions)
    for name in options:
        if name not in names:
            raise TypeError(f"unknown socket option {name!r}; known: {', '.join(names)}")


@attrs.frozen(kw_only=True)
class SocketOptions:
    """Every option a trimq socket understands.

    Pass them as keywords to :meth:`trimq.Context.socket` or set them with
    :meth:`trimq.Socket.set_options`. Transport options (HWMs, heartbeats,
    reconnect) take effect for connections made after they are set, as in libzmq.
    Instances are immutable: :meth:`replace` makes a changed copy.
    """

    sndhwm: int = attrs.field(default=1000, validator=[_int, _non_negative])
    """Messages queued per peer for sending; 0 means no limit."""
    rcvhwm: int = attrs.field(default=1000, validator=[_int, _non_negative])
    """Messages queued per peer for receiving; 0 means no limit."""
    linger: int = attrs.field(default=1000, validator=[_int, _at_least_minus_one])
    """How long ``aclose`` waits to flush unsent messages; -1 waits forever.

    libzmq's default is -1, the classic hang at exit; trimq waits 1 s.
    """
    reconnect_ivl: int = attrs.field(default=100, validator=[_int, _at_least_minus_one])
    """Delay before reconnecting, in ms; 0 or -1 disables reconnection (as libzmq)."""
    reconnect_ivl_max: int = attrs.field(default=0, validator=[_int, _non_negative])
    """If set, the delay doubles after each failure up to this value."""
    backlog: int = attrs.field(default=100, validator=[_int, _non_negative])
    """How many not-yet-accepted connections the kernel queues for a bound socket."""
    maxmsgsize: int = attrs.field(default=-1, validator=[_int, _at_least_minus_one])
    """Largest inbound message in bytes; larger ones drop the connection. -1: no limit."""
    handshake_ivl: int = attrs.field(default=30000, validator=[_int, _non_negative])
    """Time allowed for the ZMTP handshake; 0 means no limit."""
    heartbeat_ivl: int = attrs.field(default=0, validator=[_int, _non_negative])
    """Send a PING this often (0: no heartbeats)."""
    heartbeat_timeout: int = attrs.field(default=-1, validator=[_int, _at_least_minus_one])
    """Drop the connection if nothing arrives this long after a PING; -1 means heartbeat_ivl."""
    heartbeat_ttl: int = attrs.field(default=0, validator=[_int, _non_negative])
    """TTL announced in our PINGs: the peer drops us after this long without traffic."""
    connect_timeout: int = attrs.field(default=0, validator=[_int, _non_negative])
    """Time allowed for one TCP connect attempt; 0 means the OS default."""
    routing_id: bytes = attrs.field(default=b"", converter=_to_bytes, validator=_routing_id)
    """Our identity, sent in READY (REQ, DEALER, ROUTER peers see it)."""
    immediate: bool = _flag()
    """Queue messages only to completed connections (no pipe before the handshake)."""
    conflate: bool = _flag()
    """Keep only the newest message per pipe (single-part messages only)."""
    ipv6: bool = _flag()
    """Let ``tcp://*`` binds accept IPv6 as well."""
    router_mandatory: bool = _flag()
    """ROUTER: raise HostUnreachableError for unknown peers, wait when a peer is full."""
    router_handover: bool = _flag()
    """ROUTER: a new peer with a taken identity replaces the old one."""
    req_relaxed: bool = _flag()
    """REQ: allow a new request before the reply to the last one (drops the old one)."""
    req_correlate: bool = _flag()
    """REQ: prefix requests with a request id and only accept the matching reply."""
    xpub_verbose: bool = _flag()
    """XPUB: report every subscribe, not only the first per topic."""
    xpub_verboser: bool = _flag()
    """XPUB: report every unsubscribe too."""
    xpub_nodrop: bool = _flag()
    """XPUB/PUB: wait (or WouldBlock) instead of dropping when a subscriber is full."""
    xpub_welcome_msg: bytes | None = attrs.field(
        default=None, validator=lambda i, a, v: _bytes_or_none(a, v)
    )
    """XPUB: send this message to every new subscriber."""
    plain_server: bool = _flag()
    """Be a PLAIN server: check clients' usernames and passwords through ZAP
    (without a ZAP handler, as in libzmq, every PLAIN client is refused)."""
    plain_username: bytes | None = attrs.field(
        default=None, converter=_to_bytes_or_none, validator=_credential
    )
    """Be a PLAIN client with this username (set ``plain_password`` too)."""
    plain_password: bytes | None = attrs.field(
        default=None, converter=_to_bytes_or_none, validator=_credential, repr=False
    )
    """The PLAIN client's password."""
    curve_server: bool = _flag()
    """Be a CURVE server; needs ``curve_secretkey``. Without a ZAP handler every
    client that completes the handshake is accepted (as in libzmq)."""
    curve_publickey: bytes | None = attrs.field(default=None, converter=_public_key)
    """Our long-term CURVE public key (32 raw bytes or 40 Z85 characters; stored
    raw). Derived from ``curve_secretkey`` if not set."""
    # Secrets stay out of reprs, which end up in logs and tracebacks.
    curve_secretkey: bytes | None = attrs.field(default=None, converter=_secret_key, repr=False)
    """Our long-term CURVE secret key (raw or Z85; stored raw)."""
    curve_serverkey: bytes | None = attrs.field(default=None, converter=_server_key)
    """Be a CURVE client of the server with this public key (raw or Z85); needs
    ``curve_secretkey``."""
    zap_domain: bytes = attrs.field(default=b"", converter=_to_bytes)
    """Domain sent in ZAP requests. On a NULL socket, a non-empty domain turns
    ZAP authentication on (by address), as in libzmq."""
    zap_enforce_domain: bool = _flag()
    """Refuse CURVE and NULL peers when no ZAP handler runs in the Context
    (by default they are accepted, as libzmq does; PLAIN is always refused)."""

    def replace(self, **kwargs: Any) -> SocketOptions:
        """A copy with the options named in ``kwargs`` changed, each validated.

        Options are immutable, so sockets with the same options can share one
        object (a node with 100,000 actor mailboxes makes one, not 200,000).

        Raises:
            TypeError: An unknown option name, or a value of the wrong type.
            ValueError: A value out of range.
        """
        check_names(kwargs)
        return attrs.evolve(self, **kwargs)

    def security(self) -> Literal["NULL", "PLAIN", "CURVE"]:
        """The mechanism these options select, after checking they are consistent.

        Raises:
            ValueError: Options of two mechanisms are set, or one is incomplete.
        """
        plain = self.plain_server or self.plain_username is not None
        curve = self.curve_server or self.curve_serverkey is not None
        if plain and curve:
            raise ValueError(
                "both PLAIN options (plain_server/plain_username) and CURVE options "
                "(curve_server/curve_serverkey) are set: a socket uses one mechanism"
            )
        if curve:
            if self.curve_server and self.curve_serverkey is not None:
                raise ValueError(
                    "curve_server=True and curve_serverkey are both set: a server has no "
                    "server key to check; set curve_serverkey only on the client"
                )
            if self.curve_secretkey is None:
                raise ValueError(
                    "CURVE needs curve_secretkey (and curve_publickey): make a pair with "
                    "trimq.curve_keypair() or 'trimq keygen NAME'"
                )
            return "CURVE"
        if plain:
            if self.plain_server and self.plain_username is not None:
                raise ValueError(
                    "plain_server=True and plain_username are both set: set the username "
                    "only on the client"
                )
            if not self.plain_server and self.plain_password is None:
                raise ValueError("plain_username is set without plain_password")
            return "PLAIN"
        return "NULL"

    @property
    def heartbeat_timeout_s(self) -> float:
        """The effective heartbeat timeout in seconds."""
        ms = self.heartbeat_timeout if self.heartbeat_timeout >= 0 else self.heartbeat_ivl
        return ms / 1000
