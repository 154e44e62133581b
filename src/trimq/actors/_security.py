"""Who a node talks to: CURVE keys, the allow-list, and the loopback-only insecure mode."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable

import attrs

from .._peer import Peer
from ..transport import parse_endpoint
from ..zmtp import curve_key, curve_public

__all__ = ["NodeSecurity"]

log = logging.getLogger("trimq.actors")

KeyLike = bytes | str


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
    allowed: frozenset[bytes] = frozenset()
    insecure: bool = False

    @classmethod
    def make(
        cls, keys: tuple[KeyLike, KeyLike] | None, allow: Iterable[KeyLike], insecure: bool
    ) -> NodeSecurity:
        """Check and normalize ``open_node``'s security arguments.

        Raises:
            ValueError: Keys and ``insecure`` together, a secret that does not
                match its public key, or a malformed key.
        """
        allowed = frozenset(curve_key(key, "allowed key") for key in allow)
        if keys is None:
            if allowed:
                raise ValueError("allow= needs keys=(public, secret): the node's own CURVE keys")
            return cls(insecure=insecure)
        if insecure:
            raise ValueError("insecure=True and keys= together: choose one")
        public, secret = curve_key(keys[0], "public key"), curve_key(keys[1], "secret key")
        if curve_key(curve_public(secret)) != public:
            raise ValueError("the node's public key does not match its secret key")
        return cls(public, secret, allowed)

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
        if not _local(endpoint):
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
        """These settings, also trusting ``key`` (a peer we connect to by its key)."""
        return attrs.evolve(self, allowed=self.allowed | {key})

    def trusts(self, peer: Peer | None) -> bool:
        """Whether payloads from ``peer`` may carry code (see ``Codec.decode``).

        The one place that decides it: secure nodes trust a CURVE peer whose
        proven key is allowed; insecure ones, on loopback only, trust every
        local peer.
        """
        if peer is None:
            return False
        if self.insecure:
            return peer.transport in ("inproc", "ipc") or _loopback_address(peer.address)
        return peer.mechanism == "CURVE" and peer.public_key in self.allowed


def _local(endpoint: str) -> bool:
    ep = parse_endpoint(endpoint, for_bind=True)  # the lenient parse: any port
    if ep.transport in ("ipc", "inproc"):
        return True
    return ep.host == "localhost" or _loopback_address(ep.host)


def _loopback_address(address: str) -> bool:
    # An IP, or a peer address: "127.0.0.1:5555", "[::1]:5555".
    host = address
    if address.startswith("["):
        host = address[1:].split("]", 1)[0]
    elif address.count(":") == 1:
        host = address.split(":", 1)[0]
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
