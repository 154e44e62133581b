"""The node-to-node protocol: envelopes on the control DEALER/ROUTER channel.

Sans-I/O: this module turns envelopes into frames and back, and nothing else.

An envelope is one or two frames (after the ROUTER's routing-id frame), few
because CURVE seals each frame in a box of its own:

* ``kind`` NUL ``header``: one of the ``KIND_*`` names below, in ASCII, then
  plain data (a dict with str keys) encoded by ``encode_plain``: ids, names,
  flags, and the payload's codec tag. It is decoded whoever sent it, since
  plain data builds nothing but plain values;
* ``data`` (optional): a payload encoded by the node's codec (a call's
  arguments, a result, a class to spawn), never copied into the first frame.
  Decoding it is the trust decision, made in one place (``NodeSecurity.decode``).

Frames that are not an envelope raise :class:`trimq.RemoteProtocolError`: the
peer broke the node protocol (the message is dropped, the peer kept).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import attrs

from .._errors import RemoteProtocolError
from ._codec import CodecError, decode_plain, encode_plain

__all__ = ["Envelope", "decode_envelope", "encode_envelope"]

#: First message on a link: who we are (name, tags, events endpoint port).
HELLO: Final = b"hello"
#: The answer to HELLO: who the other side is.
WELCOME: Final = b"welcome"
#: Liveness, sent every heartbeat interval either way.
PING: Final = b"ping"
#: "I do not know you": the receiver should send HELLO again.
WHO: Final = b"who"
#: A tell (no id) or an ask (with an id): method, args and kwargs in the payload.
CALL: Final = b"call"
#: An ask's outcome: the result, or the error, in the payload.
REPLY: Final = b"reply"
#: The asker gave up (timeout, cancellation): cancel the handler.
CANCEL: Final = b"cancel"
#: Start an actor here: class, args and kwargs in the payload.
SPAWN: Final = b"spawn"
#: Stop or kill an actor here.
STOP: Final = b"stop"
#: Is an actor of this name here?
LOOKUP: Final = b"lookup"
#: The node is closing (so it is not lost, just gone).
BYE: Final = b"bye"
#: Tell this watcher when that actor ends (MONITOR), or stop telling it.
MONITOR: Final = b"monitor"
DEMONITOR: Final = b"demonitor"
#: A monitored actor ended: why, and the error that crashed it (payload).
DOWN: Final = b"down"
#: A supervised child here ended: its supervisor, there, decides.
CHILD_EXIT: Final = b"child-exit"
#: The supervisor's decision for a child here: suspend, restart or terminate.
SUPERVISE: Final = b"supervise"
#: An event from a node that has no events PUB (it listens nowhere): its
#: topic in the header, the event in the payload.
EVENT: Final = b"event"
#: The topic prefixes the sender's actors subscribe to, for a node that
#: sends its events as EVENT messages (HELLO and WELCOME carry them too).
TOPICS: Final = b"topics"

KINDS: Final = frozenset(
    {HELLO, WELCOME, PING, WHO, CALL, REPLY, CANCEL, SPAWN, STOP, LOOKUP, BYE}
    | {MONITOR, DEMONITOR, DOWN, CHILD_EXIT, SUPERVISE, EVENT, TOPICS}
)

#: The header key of the payload's codec tag.
TAG: Final = "~tag"

#: The largest header we decode: headers are a few names and numbers.
MAX_HEADER: Final = 4096


@attrs.frozen
class Envelope:
    """One decoded message: its kind, its header, and its still-encoded payload."""

    kind: bytes
    header: dict[str, Any]
    tag: bytes | None = None
    data: bytes = b""

    def get(self, key: str, kind: type, default: Any = None) -> Any:
        """``header[key]`` if it has type ``kind``, else ``default`` (a peer may lie)."""
        value = self.header.get(key, default)
        return value if isinstance(value, kind) else default


def encode_envelope(
    kind: bytes, header: dict[str, Any], payload: tuple[bytes, bytes] | None = None
) -> list[bytes]:
    """The frames of one envelope (``payload`` is a codec's ``(tag, data)``)."""
    if payload is None:
        return [kind + b"\0" + encode_plain(header)]
    tag, data = payload
    return [kind + b"\0" + encode_plain({**header, TAG: tag.decode("ascii")}), data]


def decode_envelope(frames: Sequence[bytes]) -> Envelope:
    """Parse the frames of one envelope; never decodes the payload.

    Raises:
        RemoteProtocolError: Wrong frame count, unknown kind, or a bad header.
    """
    if len(frames) not in (1, 2):
        raise RemoteProtocolError(f"an envelope has 1 or 2 frames, got {len(frames)}")
    kind, nul, raw = bytes(frames[0]).partition(b"\0")
    if not nul or kind not in KINDS:
        raise RemoteProtocolError(f"unknown message kind {kind[:20]!r}")
    if len(raw) > MAX_HEADER:
        raise RemoteProtocolError(f"header of {len(raw)} bytes (at most {MAX_HEADER})")
    try:
        header = decode_plain(raw)
    except CodecError as exc:
        raise RemoteProtocolError(f"bad header: {exc}") from None
    if not isinstance(header, dict) or not all(isinstance(k, str) for k in header):
        raise RemoteProtocolError("a header is a dict with str keys")
    tag = header.pop(TAG, None)
    if len(frames) == 1:
        if tag is not None:
            raise RemoteProtocolError("a payload tag without a payload")
        return Envelope(kind, header)
    if not (isinstance(tag, str) and len(tag) == 1 and tag.isascii()):
        raise RemoteProtocolError("a payload without a one-letter tag")
    return Envelope(kind, header, tag.encode(), frames[1])
