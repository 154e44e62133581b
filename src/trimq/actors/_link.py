"""One peer node as this node sees it: its name, its liveness, its credit, how to send to it.

A :class:`Link` is one peer as either control socket sees it (our DEALER to
its ROUTER, or our ROUTER's connection from its DEALER); :class:`NodeRef` is
how the public API names it; :class:`NetworkOptions` are ``open_node``'s
network settings. The sockets, the handshake and heartbeats are ``_links``'.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import attrs
import trio

from ..zmtp import z85_encode
from . import _wire as wire
from ._flow import PeerLimits

if TYPE_CHECKING:
    from .._peer import Peer
    from ._turns import ReadTurns

C = TypeVar("C", bound=wire.Credit)

__all__ = ["Link", "LinkOwner", "NetworkOptions", "NodeRef", "PeerLimits", "who"]


@attrs.frozen
class NodeRef:
    """Another node this one knows, as :meth:`Node.connect` and :attr:`Node.peers` give it.

    Attributes:
        name: Its node name (the ``node`` of its actors' refs).
        tags: What it said it offers (``"gpu"``, ``"region=eu"``), for placement.
        endpoint: Where we reached it, or ``""`` if it connected to us.

    .. versionadded:: 0.1
    """

    name: str
    tags: frozenset[str] = frozenset()
    endpoint: str = attrs.field(default="", eq=False)


@attrs.frozen
class NetworkOptions:
    """``open_node``'s settings for talking to other nodes (see its docs).

    Raises:
        ValueError: ``heartbeat`` is not positive, or ``timeout`` not above it.
    """

    tags: frozenset[str] = frozenset()
    heartbeat: float = 1.0
    timeout: float = 3.0
    max_message: int = 64 * 2**20
    limits: PeerLimits = attrs.field(factory=PeerLimits)

    def __attrs_post_init__(self) -> None:
        if self.heartbeat <= 0 or self.timeout <= self.heartbeat:
            raise ValueError(
                "heartbeat must be > 0 and timeout > heartbeat, "
                f"got {self.heartbeat}, {self.timeout}"
            )


class Link:
    """One known peer node and how to send to it."""

    def __init__(
        self,
        send: Callable[..., None],
        asend: Callable[[list[bytes]], Awaitable[None]],
        endpoint: str = "",
    ) -> None:
        #: send(frames, flush=False) never blocks: raises trio.WouldBlock when
        #: the queue is full; flush=True writes at once (a lone request or reply).
        self.send = send
        self.asend = asend  # waits for room
        self.endpoint = endpoint  # where we connected to it; "" if it connected to us
        self.name = ""
        self.tags: frozenset[str] = frozenset()
        # What its actors subscribe to: events we send it as EVENT messages
        # when we have no events PUB (see EventBridge.publish).
        self.topics: frozenset[str] = frozenset()
        self.alive = False
        self.last_seen = -math.inf
        self.welcomed = trio.Event()
        # Who reads the DEALER, on a link we connected (see _turns).
        self.turns: ReadTurns | None = None
        #: The CURVE key its connection proved (None: insecure, or not yet).
        self.key: bytes | None = None
        self.heard = -math.inf  # when its last message came (named or not)
        #: A ROUTER peer's routing id: its connection, as our ROUTER names it.
        self.identity = b""
        # Credit (see _flow). Our calls to it: its window, our epoch, how
        # many we sent in it and how many it took.
        self.window = 1000
        self.epoch = 0
        self.sent = 0
        self.granted = 0
        self.credit_changed = trio.Event()
        # Its calls to us: its epoch, how many our mailboxes took, how many
        # of those we told it of.
        self.peer_epoch = 0
        self.delivered = 0
        self.granted_back = 0

    @property
    def has_credit(self) -> bool:
        """Whether its node takes another call from us now (see ``_flow``)."""
        return self.sent - self.granted < self.window

    def start_epoch(self, epoch: int) -> None:
        """We sent a HELLO or WELCOME carrying ``epoch``: our calls count from 0."""
        self.epoch, self.sent, self.granted = epoch, 0, 0
        self._credit_changed()

    def credited(self, epoch: int, delivered: int) -> None:
        """Its node took ``delivered`` of our calls of ``epoch`` (a CREDIT or PING)."""
        if epoch == self.epoch and self.granted < delivered:
            self.granted = min(delivered, self.sent)  # never more than we sent
            self._credit_changed()

    def _credit_changed(self) -> None:
        self.credit_changed.set()
        self.credit_changed = trio.Event()

    def grant(self, kind: type[C]) -> C:
        """A CREDIT (or a PING, which carries one) for its node: its calls
        our mailboxes took so far in its epoch, all granted back now."""
        self.granted_back = self.delivered
        return kind(epoch=self.peer_epoch, delivered=self.delivered)

    @property
    def ref(self) -> NodeRef:
        """How the public API names this peer."""
        return NodeRef(self.name, self.tags, self.endpoint)


class LinkOwner(Protocol):
    """What :class:`Links` asks of the layer above it (the cluster)."""

    async def receive(self, link: Link, frames: list[bytes], peer: Peer | None) -> None:
        """A message arrived on ``link`` (every one, HELLO included)."""

    def about(self) -> dict[str, Any]:
        """What our HELLO and WELCOME say besides our name and tags."""
        ...

    def greeted(self, link: Link, env: wire.Envelope, peer: Peer | None) -> None:
        """``link`` was named by its HELLO or WELCOME ``env``."""

    def found(self, link: Link) -> None:
        """``link``'s node is reachable again (or for the first time)."""

    def lost(self, link: Link, why: str) -> None:
        """``link``'s node was lost or left (``link.alive`` is False now)."""

    def forgot(self, link: Link) -> None:
        """``link`` (lost long ago, its connection gone) is forgotten: drop
        what is kept for it."""


def who(peer: Peer | None) -> str:
    """A peer as logs name it: its address, and its key if it proved one."""
    if peer is None:
        return "an unknown peer"
    if peer.public_key is not None:
        return f"{peer.address} (key {z85_encode(peer.public_key).decode()})"
    return peer.address or peer.transport
