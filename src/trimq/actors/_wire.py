"""The node-to-node protocol: envelopes on the control DEALER/ROUTER channel.

Sans-I/O: this module turns envelopes into frames and back, and nothing else.

An envelope is one or two frames (after the ROUTER's routing-id frame), few
because CURVE seals each frame in a box of its own:

* ``kind`` NUL [``tag``] ``header``: one of the kind names below in ASCII,
  a NUL, the payload's one-byte codec tag when a payload frame follows, then
  the header: a MessagePack map whose shape is fixed per kind (one
  :class:`Header` subclass each: ids, names, flags). A header is decoded
  whoever sent it, straight into its typed struct: an unknown field, a
  missing one, a wrong type or a value out of its bounds refuses the whole
  message before any handler runs. Decoding builds only those fields (str,
  int, float, bool, short lists of str), in time and memory linear in the
  frame, so nothing in a header can run code or blow up.
* ``data`` (optional): a payload encoded by the node's codec (a call's
  arguments, a result, a class to spawn), never copied into the first frame.
  Decoding it is the trust decision, made in one place (``NodeSecurity.decode``).

Frames that are not an envelope raise :class:`trimq.RemoteProtocolError`: the
peer broke the node protocol (the message is dropped, the peer kept).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, ClassVar, Final, Literal, TypeVar

import attrs
import msgspec

from .._errors import RemoteProtocolError
from ._exit import ExitKind

__all__ = ["Envelope", "Header", "decode_envelope", "encode_envelope"]

#: The largest header we decode: a few names and numbers, or an error's text.
MAX_HEADER: Final = 64 * 1024
#: The longest node, actor or method name, tag or topic a header may carry.
MAX_NAME: Final = 1024
#: The longest error text (message, traceback) a REPLY or an exit may carry;
#: a sender cuts longer ones (keeping the end, where a traceback says most).
MAX_TEXT: Final = 16 * 1024
#: The most tags a node may claim, and events endpoints it may announce.
MAX_TAGS: Final = 64
MAX_ENDPOINTS: Final = 8
#: The most topic prefixes a peer's actors may subscribe to (HELLO, TOPICS):
#: the cap on a peer's subscriptions here.
MAX_TOPICS: Final = 1024
#: The largest credit window a node may announce (see ``_flow``).
MAX_WINDOW: Final = 2**31

Name = Annotated[str, msgspec.Meta(max_length=MAX_NAME)]
Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]
RequestId = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
Count = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Names = Annotated[list[Name], msgspec.Meta(max_length=MAX_TAGS)]
Endpoints = Annotated[list[Name], msgspec.Meta(max_length=MAX_ENDPOINTS)]
Topics = Annotated[list[Name], msgspec.Meta(max_length=MAX_TOPICS)]


class Header(
    msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True, frozen=True
):
    """The typed header of one envelope kind (each subclass names its ``KIND``)."""

    KIND: ClassVar[bytes] = b""


class Hello(Header, kw_only=True, frozen=True):
    """First message on a link: who we are (name, tags, events endpoints, topics)."""

    KIND: ClassVar[bytes] = b"hello"
    name: Name
    tags: Names = []
    events: Endpoints = []
    topics: Topics = []
    #: Counting our calls to the receiver starts again, in this epoch (``_flow``).
    epoch: Count = 0
    #: How many of the receiver's calls we take before our mailboxes do.
    window: Annotated[int, msgspec.Meta(ge=1, le=MAX_WINDOW)] = 1000


class Welcome(Hello, kw_only=True, frozen=True):
    """The answer to HELLO: who the other side is."""

    KIND: ClassVar[bytes] = b"welcome"


class Credit(Header, kw_only=True, frozen=True):
    """How many of the receiver's calls of its ``epoch`` the sender's mailboxes took."""

    KIND: ClassVar[bytes] = b"credit"
    epoch: Count
    delivered: Count


class Ping(Credit, kw_only=True, frozen=True):
    """Liveness, sent every heartbeat interval either way; with the credit
    (so a lost CREDIT heals within a heartbeat)."""

    KIND: ClassVar[bytes] = b"ping"
    epoch: Count = 0
    delivered: Count = 0


class Who(Header, kw_only=True, frozen=True):
    """ "I do not know you": the receiver should send HELLO again."""

    KIND: ClassVar[bytes] = b"who"


class Bye(Header, kw_only=True, frozen=True):
    """The node is closing (so it is not lost, just gone)."""

    KIND: ClassVar[bytes] = b"bye"


class Request(Header, kw_only=True, frozen=True):
    """A message that may be answered by a REPLY carrying the same ``id``.

    Ids are chosen by the asker and mean something on its connection only.
    """

    id: RequestId | None = None


class Call(Request, kw_only=True, frozen=True):
    """A tell (no id) or an ask (with an id): args and kwargs in the payload."""

    KIND: ClassVar[bytes] = b"call"
    actor: Name
    method: Name


class Spawn(Request, kw_only=True, frozen=True):
    """Start an actor here: class, args and kwargs in the payload."""

    KIND: ClassVar[bytes] = b"spawn"
    name: Name | None = None
    mailbox_size: Annotated[int, msgspec.Meta(ge=0, lt=2**31)] = 1000
    shutdown: Annotated[float, msgspec.Meta(ge=0, le=86400)] = 5.0
    supervisor: Name | None = None


class Stop(Request, kw_only=True, frozen=True):
    """Stop or kill an actor here."""

    KIND: ClassVar[bytes] = b"stop"
    actor: Name
    kill: bool = False


class Lookup(Request, kw_only=True, frozen=True):
    """Is an actor of this name here?"""

    KIND: ClassVar[bytes] = b"lookup"
    name: Name


class Supervise(Request, kw_only=True, frozen=True):
    """The supervisor's decision for a child here: suspend, restart or terminate."""

    KIND: ClassVar[bytes] = b"supervise"
    actor: Name
    verdict: Literal["suspend", "restart", "terminate"]


class Reply(Header, kw_only=True, frozen=True):
    """A request's outcome: the result, or the error (its type and text here,
    the error itself in the payload when it could be encoded)."""

    KIND: ClassVar[bytes] = b"reply"
    id: RequestId
    ok: bool
    node: Name = ""
    #: LOOKUP: whether the actor is there.
    found: bool = False
    #: SPAWN: the new actor's name.
    name: Name = ""
    #: SPAWN: the class's module cannot be imported here (send it by value).
    missing_module: bool = False
    type: Name = ""
    message: Text = ""
    tb: Text = ""


class Cancel(Header, kw_only=True, frozen=True):
    """The asker gave up (timeout, cancellation): cancel the handler."""

    KIND: ClassVar[bytes] = b"cancel"
    id: RequestId


class Monitor(Header, kw_only=True, frozen=True):
    """Tell this watcher (on the sender) when that actor (here) ends."""

    KIND: ClassVar[bytes] = b"monitor"
    actor: Name
    watcher: Name


class Demonitor(Monitor, kw_only=True, frozen=True):
    """Stop telling that watcher."""

    KIND: ClassVar[bytes] = b"demonitor"


class Down(Header, kw_only=True, frozen=True):
    """A monitored actor ended: why, and the error that crashed it (payload)."""

    KIND: ClassVar[bytes] = b"down"
    actor: Name
    watcher: Name
    kind: ExitKind
    error: Text = ""


class ChildExit(Header, kw_only=True, frozen=True):
    """A supervised child here ended: its supervisor, there, decides."""

    KIND: ClassVar[bytes] = b"child-exit"
    actor: Name
    supervisor: Name
    kind: ExitKind
    error: Text = ""


class Event(Header, kw_only=True, frozen=True):
    """An event from a node that has no events PUB (it listens nowhere): the
    event in the payload."""

    KIND: ClassVar[bytes] = b"event"
    topic: Name


class TopicsChanged(Header, kw_only=True, frozen=True):
    """The topic prefixes the sender's actors subscribe to, for a node that
    sends its events as EVENT messages (HELLO and WELCOME carry them too)."""

    KIND: ClassVar[bytes] = b"topics"
    topics: Topics


_HEADERS: Final[tuple[type[Header], ...]] = (
    Hello,
    Welcome,
    Ping,
    Who,
    Bye,
    Credit,
    Call,
    Spawn,
    Stop,
    Lookup,
    Supervise,
    Reply,
    Cancel,
    Monitor,
    Demonitor,
    Down,
    ChildExit,
    Event,
    TopicsChanged,
)
_DECODERS: Final = {cls.KIND: msgspec.msgpack.Decoder(cls) for cls in _HEADERS}
KINDS: Final = frozenset(_DECODERS)
HELLO, WELCOME, PING, WHO, BYE, CREDIT = (c.KIND for c in (Hello, Welcome, Ping, Who, Bye, Credit))
CALL, SPAWN, STOP, LOOKUP, SUPERVISE = (c.KIND for c in (Call, Spawn, Stop, Lookup, Supervise))
REPLY, CANCEL, MONITOR, DEMONITOR = (c.KIND for c in (Reply, Cancel, Monitor, Demonitor))
DOWN, CHILD_EXIT, EVENT, TOPICS = (c.KIND for c in (Down, ChildExit, Event, TopicsChanged))
_encode = msgspec.msgpack.Encoder().encode

H = TypeVar("H", bound=Header)


@attrs.frozen
class Envelope:
    """One decoded message: its kind, its typed header, and its still-encoded payload."""

    kind: bytes
    header: Header
    tag: bytes | None = None
    data: bytes = b""

    def head(self, cls: type[H]) -> H:
        """The header as ``cls`` (the struct of this envelope's kind).

        Raises:
            RemoteProtocolError: The header is of another kind (a handler
                given the wrong envelope: a bug here, not the peer's doing).
        """
        header = self.header
        if not isinstance(header, cls):
            raise RemoteProtocolError(f"a {self.kind!r} envelope has no {cls.__name__} header")
        return header


def encode_envelope(header: Header, payload: tuple[bytes, bytes] | None = None) -> list[bytes]:
    """The frames of one envelope (``payload`` is a codec's ``(tag, data)``)."""
    if payload is None:
        return [header.KIND + b"\0" + _encode(header)]
    tag, data = payload
    return [header.KIND + b"\0" + tag + _encode(header), data]


def decode_envelope(frames: Sequence[bytes]) -> Envelope:
    """Parse the frames of one envelope; never decodes the payload.

    Raises:
        RemoteProtocolError: Wrong frame count, unknown kind, or a header that
            is not exactly its kind's struct.
    """
    count = len(frames)
    if count != 1 and count != 2:
        raise RemoteProtocolError(f"an envelope has 1 or 2 frames, got {count}")
    first = bytes(frames[0])
    kind, nul, raw = first.partition(b"\0")
    decoder = _DECODERS.get(kind) if nul else None
    if decoder is None:
        raise RemoteProtocolError(f"unknown message kind {kind[:20]!r}")
    tag = None
    if count == 2:
        tag, raw = raw[:1], raw[1:]
        if not (tag.isascii() and tag.isalpha()):
            raise RemoteProtocolError(f"a payload needs a one-letter codec tag, got {tag!r}")
    if len(raw) > MAX_HEADER:
        raise RemoteProtocolError(f"header of {len(raw)} bytes (at most {MAX_HEADER})")
    try:
        header = decoder.decode(raw)
    except msgspec.DecodeError as exc:  # ValidationError included
        raise RemoteProtocolError(f"bad {kind.decode()} header: {exc}") from None
    if count == 1:
        return Envelope(kind, header)
    return Envelope(kind, header, tag, frames[1])


def cut(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` within ``limit`` characters, its end kept (where a traceback says most)."""
    if len(text) <= limit:
        return text
    return "[...]" + text[len(text) - limit + 5 :]
