"""Who a node talks to: CURVE keys, the allow-list, and the loopback-only insecure mode."""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import attrs

from .._peer import Peer
from ..transport import parse_endpoint
from ..zmtp import curve_key, curve_public

if TYPE_CHECKING:
    from ._codec import Codec

__all__ = [
    "EVENTS_ZAP_DOMAIN",
    "RIGHTS",
    "ZAP_DOMAIN",
    "NodeSecurity",
    "address_host",
    "local_endpoint",
]

log = logging.getLogger("trimq.actors")

KeyLike = bytes | str

#: The ZAP domains of a node's control ROUTER and of its events PUB: the
#: allow-list for the first, the keys with the ``subscribe`` right for the second.
ZAP_DOMAIN = "trimq.node"
EVENTS_ZAP_DOMAIN = "trimq.events"

#: What a peer node may do here, by its proven key:
#:
#: * ``ask``: tell and ask this node's actors, look them up, monitor them;
#:   with plain data only (None, numbers, str, bytes, containers of them).
#: * ``code``: send payloads that carry code or arbitrary objects (class
#:   instances, exceptions, functions); decoding them runs the sender's code.
#: * ``spawn``: start and stop actors here (the class travels as code, so
#:   ``spawn`` needs ``code`` too).
#: * ``publish``: have its events delivered to this node's subscribers.
#: * ``subscribe``: receive this node's events.
#: * ``host``: be a target of this node's placement (``spawn(on=...)`` by
#:   name, tag or ``"*"``): it then receives the classes and arguments of
#:   the actors placed there. A node we connect to with ``key=`` has it; the
#:   tags a peer claims never make it a target without it.
RIGHTS = frozenset({"ask", "code", "spawn", "publish", "subscribe", "host"})


@attrs.frozen
class NodeSecurity:
    """A node's keys and the peers it trusts.

    Secure (the default): every connection is CURVE, and only peers whose
    long-term public key is allowed get through the handshake (the ZAP
    handler refuses the rest). Insecure: NULL, which proves nothing about a
    peer, so it is accepted only on loopback and ipc endpoints.
    """

    public: bytes | None = None
    secret: bytes | None = None
    #: Each allowed peer's key and what it may do (see RIGHTS).
    rights: Mapping[bytes, frozenset[str]] = attrs.field(factory=dict, hash=False)
    insecure: bool = False

    @classmethod
    def make(
        cls,
        keys: tuple[KeyLike, KeyLike] | None,
        allow: Iterable[KeyLike] | Mapping[KeyLike, Iterable[str]],
        insecure: bool,
    ) -> NodeSecurity:
        """Check and normalize ``open_node``'s security arguments.

        ``allow`` is keys (each with every right) or a mapping from key to rights.

        Raises:
            ValueError: Keys and ``insecure`` together, a secret that does not
                match its public key, a malformed key, or an unknown right.
        """
        rights = _rights(allow)
        if keys is None:
            if rights:
                raise ValueError("allow= needs keys=(public, secret): the node's own CURVE keys")
            return cls(insecure=insecure)
        if insecure:
            raise ValueError("insecure=True and keys= together: choose one")
        public, secret = curve_key(keys[0], "public key"), curve_key(keys[1], "secret key")
        if curve_key(curve_public(secret)) != public:
            raise ValueError("the node's public key does not match its secret key")
        return cls(public, secret, rights)

    @property
    def allowed(self) -> frozenset[bytes]:
        """The keys of every allowed peer, whatever its rights."""
        return frozenset(self.rights)

    def allowed_to(self, right: str) -> frozenset[bytes]:
        """The keys of the peers that have ``right``."""
        return frozenset(key for key, rights in self.rights.items() if right in rights)

    @property
    def secure(self) -> bool:
        """Whether this node speaks CURVE."""
        return self.secret is not None

    def check_endpoint(self, endpoint: str, what: str) -> None:
        """Refuse to listen or connect without keys anywhere but loopback and ipc.

        Raises:
            ValueError: What to do instead.
        """
        if self.secure:
            return
        if not local_endpoint(endpoint):
            raise ValueError(
                f"refusing to {what} {endpoint} without CURVE keys: a node on the network "
                "must authenticate its peers. Give it keys=(public, secret) and allow=[peer "
                "keys] (make them with 'trimq keygen NAME'); insecure=True is for loopback "
                "and ipc endpoints only"
            )
        if not self.insecure:
            raise ValueError(
                f"refusing to {what} {endpoint} without CURVE keys: pass insecure=True for "
                "development on loopback (any local process can then drive this node), or "
                "keys=(public, secret) and allow=[peer keys]"
            )

    def with_peer(self, key: bytes) -> NodeSecurity:
        """These settings, also allowing ``key`` (a node we connect to by its key)
        every right, unless ``allow`` already said what it may do."""
        if key in self.rights:
            return self
        return attrs.evolve(self, rights={**self.rights, key: RIGHTS})

    def may(self, peer: Peer | None, right: str) -> bool:
        """Whether ``peer`` has ``right`` here: the one place that decides.

        A secure node asks the key the CURVE handshake proved. An insecure
        one lets local peers do everything: inproc (this process); ipc peers
        that the kernel says run as this process's effective user; and any
        loopback tcp peer. Loopback tcp cannot be bound to a user (every local
        user can connect to it), so on a shared machine use ipc or CURVE.
        """
        if peer is None:
            return False
        if self.insecure:
            if peer.transport == "inproc":
                return True
            if peer.transport == "ipc":
                # Whoever can reach the socket file can connect, so the file's
                # permissions are not enough: trust the uid the kernel recorded
                # for the peer (SO_PEERCRED). Without it (a platform that
                # cannot tell, or asking failed) we cannot know it is our
                # user, so: no rights.
                return peer.uid is not None and peer.uid == os.geteuid()
            return _loopback_address(peer.address)  # tcp: any local user
        if peer.mechanism != "CURVE" or peer.public_key is None:
            return False
        return right in self.rights.get(peer.public_key, frozenset())

    def trusts(self, peer: Peer | None) -> bool:
        """Whether payloads from ``peer`` may carry code (see ``Codec.decode``)."""
        return self.may(peer, "code")

    def decode(self, codec: Codec, tag: bytes, data: bytes, peer: Peer | None) -> object:
        """Decode a payload from ``peer``: the one place where what its
        connection proved decides whether the payload may carry code
        (classes, functions, arbitrary objects). Every payload from another
        node, control message or event, is decoded here.

        Raises:
            CodecError: Not a payload, or code from a peer not trusted with it.
        """
        return codec.decode(tag, data, allow_code=self.trusts(peer))


def _rights(
    allow: Iterable[KeyLike] | Mapping[KeyLike, Iterable[str]],
) -> dict[bytes, frozenset[str]]:
    if isinstance(allow, Mapping):
        out: dict[bytes, frozenset[str]] = {}
        for key, given in allow.items():
            wanted = frozenset([given] if isinstance(given, str) else given)
            unknown = wanted - RIGHTS
            if unknown:
                raise ValueError(
                    f"unknown rights {sorted(unknown)} (known: {', '.join(sorted(RIGHTS))})"
                )
            if "spawn" in wanted and "code" not in wanted:
                raise ValueError("the spawn right needs the code right: a spawn ships a class")
            out[curve_key(key, "allowed key")] = wanted
        return out
    return {curve_key(key, "allowed key"): RIGHTS for key in allow}


def local_endpoint(endpoint: str) -> bool:
    """Whether ``endpoint`` stays on this host: loopback tcp, ipc or inproc.

    Raises:
        trimq.InvalidEndpointError: It is not an endpoint.
    """
    ep = parse_endpoint(endpoint, for_bind=True)  # the lenient parse: any port
    if ep.transport in ("ipc", "inproc"):
        return True
    return ep.host == "localhost" or _loopback_address(ep.host)


def address_host(address: str) -> str:
    """The host of an IP or a peer address ("127.0.0.1:5555", "[::1]:5555", "::1")."""
    if address.startswith("["):
        return address[1:].split("]", 1)[0]
    if address.count(":") == 1:
        return address.split(":", 1)[0]
    return address


@functools.lru_cache(maxsize=1024)  # asked for every message of an insecure node
def _loopback_address(address: str) -> bool:
    try:
        return ipaddress.ip_address(address_host(address)).is_loopback
    except ValueError:
        return False
