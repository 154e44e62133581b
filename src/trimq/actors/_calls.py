"""Requests between nodes and their replies: ids, waiting, answering, error boxing.

A request (CALL with an id, SPAWN, STOP, LOOKUP, SUPERVISE) carries an id
from this node's counter; the other node answers with a REPLY holding the
same id and either the result or the error. An error travels as an object
when the codec can encode it and the receiver may decode it, and always as
text (type, message, traceback), so that the asker gets either the
exception itself (with the remote traceback as a note) or an
:class:`ActorError` standing in for it. The same goes for the error in an
:class:`ExitReason` that a DOWN or CHILD_EXIT carries.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import itertools
import traceback
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from .._errors import RemoteProtocolError
from . import _wire as wire
from ._codec import CodecError
from ._errors import ActorError, ActorStoppedError
from ._exit import ExitReason

if TYPE_CHECKING:
    from .._peer import Message, Peer
    from ._codec import Codec
    from ._link import Link
    from ._links import Links
    from ._local import PendingReply
    from ._turns import ReadTurns

__all__ = ["Calls", "Pending"]


class Pending:
    """A request to another node, waiting for its REPLY."""

    __slots__ = ("done", "envelope", "error", "link", "node", "peer", "reading", "scope")

    def __init__(self, node: str, link: Link) -> None:
        self.node = node
        self.link = link  # only a REPLY on this connection answers it
        self.done = trio.Event()
        self.envelope: wire.Envelope | None = None
        self.peer: Peer | None = None
        self.error: BaseException | None = None  # set if the node was lost
        self.scope: trio.CancelScope | None = None  # around its asker's read
        self.reading = False  # its asker reads the socket (see _turns)

    def finish(self) -> None:
        """Wake the asker, wherever it waits."""
        self.done.set()
        if self.reading:
            assert self.scope is not None
            self.scope.cancel()


class Calls:
    """This node's requests to other nodes, and the asks it answers for them."""

    def __init__(self, links: Links, codec: Codec, name: str) -> None:
        self._links = links
        self._codec = codec
        self._name = name  # this node's, for the replies it sends
        self._pending: dict[int, Pending] = {}
        # Asks we run for others, by the link they came on: an id means
        # something on its own connection only.
        self._serving: dict[tuple[Link, int], PendingReply] = {}
        self._serving_for: collections.Counter[Link] = collections.Counter()
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ asking

    async def request(
        self,
        node: str,
        header: wire.Request,
        payload: tuple[bytes, bytes] | None,
        timeout: float | None,
    ) -> tuple[wire.Envelope, Peer | None]:
        """Send a request to ``node`` and return its REPLY (not yet interpreted:
        see :meth:`outcome`).

        Raises:
            ActorNotFoundError: ``node`` is not reachable.
            ActorStoppedError: The request could not be sent, or the node was
                lost before answering.
            trio.TooSlowError: ``timeout`` expired (the other node is told to cancel).
        """
        links = self._links
        link = links.get(node)
        rid = next(self._ids)
        pending = self._pending[rid] = Pending(node, link)
        try:
            with trio.fail_after(timeout) if timeout is not None else contextlib.nullcontext():
                request = msgspec.structs.replace(header, id=rid)
                if not links.send(link, request, payload, flush=True):
                    raise ActorStoppedError(f"node {node!r} is not reachable now")
                if isinstance(header, wire.Call):
                    link.sent += 1  # a call counts against our credit there (_flow)
                await self._await_reply(link, pending)
        except BaseException:
            links.send(link, wire.Cancel(id=rid))  # best effort
            raise
        finally:
            del self._pending[rid]
        if pending.error is not None:
            raise pending.error
        assert pending.envelope is not None
        return pending.envelope, pending.peer

    async def _await_reply(self, link: Link, pending: Pending) -> None:
        # On a link we connected, read the reply ourselves if we may (see
        # _turns): it then wakes this task directly. Replies and pings are
        # handled here; anything else goes to the serve task, and with it the
        # wait for our reply.
        turns = link.turns
        if turns is None or not turns.take(pending):
            await pending.done.wait()
            return
        pending.reading = True
        try:
            # Entered once the request is on its way: not on the round trip's path.
            with trio.CancelScope() as pending.scope:  # pending.finish() ends it
                while not pending.done.is_set():
                    message = await turns.dealer.recv_message()
                    if turns.blocked or not self._take_reply(link, message):
                        turns.handoff.append(message)
                        break
        except trio.ClosedResourceError:
            pass
        finally:
            pending.reading = False
            turns.give_back()
        if not pending.done.is_set():  # (a set Event's wait() is a checkpoint still)
            await pending.done.wait()

    def _take_reply(self, link: Link, message: Message) -> bool:
        # A REPLY or PING an asker read (see _await_reply), handled as the
        # serve task would; False for anything else.
        try:
            env = wire.decode_envelope(message.frames)
        except RemoteProtocolError:
            return False  # the serve task says what was wrong
        if env.kind not in (wire.REPLY, wire.PING) or not link.name:
            return False
        self._links.seen(link)
        if env.kind == wire.REPLY:
            self.settle(link, env, message.peer, reader=link.turns)
        return True

    def settle(
        self, link: Link, env: wire.Envelope, peer: Peer | None, reader: ReadTurns | None = None
    ) -> None:
        """A REPLY arrived: wake the request it answers, if it is ours and still waits.

        ``reader``: the asker reading ``link`` read it (see ``_turns``).
        """
        pending = self._pending.get(env.head(wire.Reply).id)
        if pending is None or pending.link is not link:
            return  # late (the asker gave up), or not that connection's to answer
        pending.envelope, pending.peer = env, peer
        if reader is not None and reader.asker is pending:
            pending.done.set()  # it read its own reply: it is running, not waiting
        else:
            pending.finish()  # wherever it waits, the serve task's read included

    def outcome(self, env: wire.Envelope, peer: Peer | None) -> Any:
        """The result a REPLY carries, or the error it carries raised here.

        Raises:
            Exception: The remote error, as itself or as an :class:`ActorError`.
        """
        if env.head(wire.Reply).ok:
            return self.payload(env, peer) if env.tag is not None else None
        value = None
        if env.tag is not None:
            with contextlib.suppress(CodecError):  # not rebuildable here: an ActorError
                value = self.payload(env, peer)
        raise _error(env, value)

    def payload(self, env: wire.Envelope, peer: Peer | None) -> object:
        """Decode a message's payload (see ``NodeSecurity.decode``).

        Raises:
            CodecError: Not a payload, or code from a peer not trusted with it.
        """
        assert env.tag is not None
        return self._links.security.decode(self._codec, env.tag, env.data, peer)

    def arguments(
        self, env: wire.Envelope, peer: Peer | None, *, with_class: bool = False
    ) -> tuple[Any, ...]:
        """A CALL's payload, ``(args, kwargs)``, or a SPAWN's, ``(class, args, kwargs)``.

        Raises:
            RemoteProtocolError: The payload has another shape.
            CodecError: See :meth:`payload`.
        """
        shape = "(class, args, kwargs)" if with_class else "(args, kwargs)"
        decoded = self.payload(env, peer) if env.tag is not None else None
        if not (isinstance(decoded, tuple) and len(decoded) == 2 + with_class):
            raise RemoteProtocolError(f"the payload must be {shape}")
        *_, args, kwargs = decoded
        if not isinstance(args, tuple) or not isinstance(kwargs, dict):
            raise RemoteProtocolError(f"the payload must be {shape}")
        return decoded

    # ------------------------------------------------------------------ answering

    def serve(self, link: Link, rid: int, reply: PendingReply) -> None:
        """A local actor is answering ask ``rid`` from ``link``'s node: reply when done."""
        if (link, rid) not in self._serving:
            self._serving_for[link] += 1
        self._serving[(link, rid)] = reply
        # Answered from the actor's task as its handler returns: no task and
        # no scheduling hop of our own between the result and the reply.
        reply.on_done = functools.partial(self._answer, link, rid, reply)

    def serving(self, link: Link) -> int:
        """How many of ``link``'s asks are being answered here."""
        return self._serving_for[link]

    def _served(self, link: Link, rid: int) -> PendingReply | None:
        reply = self._serving.pop((link, rid), None)
        if reply is not None:
            left = self._serving_for[link] = self._serving_for[link] - 1
            if not left:
                del self._serving_for[link]
        return reply

    def _answer(self, link: Link, rid: int, reply: PendingReply) -> None:
        if self._served(link, rid) is not None and not reply.abandoned:
            self.reply(link, rid, reply.value, reply.error)

    def cancel(self, link: Link, rid: int) -> None:
        """``link``'s node gave up on ask ``rid``: cancel its handler."""
        reply = self._served(link, rid)
        if reply is not None:
            reply.abandon()

    def reply(
        self,
        link: Link,
        rid: int | None,
        result: Any = None,
        error: BaseException | None = None,
        *,
        found: bool = False,
        name: str = "",
        missing_module: bool = False,
    ) -> None:
        """Send the REPLY to request ``rid``: ``result``, or ``error`` boxed;
        ``found``, ``name``, ``missing_module``: what a LOOKUP or SPAWN answers.
        A request without an id (a peer's mistake) gets no reply."""
        if rid is None:
            return
        if error is None:
            try:
                payload = None if result is None else self._codec.encode(result)
            except CodecError as exc:
                self.reply(link, rid, error=exc)  # the asker learns why
                return
            header = wire.Reply(
                id=rid,
                ok=True,
                node=self._name,
                found=found,
                name=name,
                missing_module=missing_module,
            )
            self._links.send_surely(link, wire.encode_envelope(header, payload))
            return
        header = wire.Reply(
            id=rid,
            ok=False,
            node=self._name,
            type=wire.cut(f"{type(error).__module__}.{type(error).__qualname__}", wire.MAX_NAME),
            message=wire.cut(str(error)),
            tb=wire.cut("".join(traceback.format_exception(error))),
            missing_module=missing_module,
        )
        try:
            payload = self._codec.encode(error)
        except CodecError:
            payload = None  # the asker gets an ActorError with the type and traceback
        self._links.send_surely(link, wire.encode_envelope(header, payload))

    # ------------------------------------------------------------------ exit reasons

    def box_reason(self, reason: ExitReason) -> tuple[str, tuple[bytes, bytes] | None]:
        """What a DOWN or CHILD_EXIT carries besides the reason's kind: the
        error as text, and as an object if it can travel (see :meth:`unbox_reason`)."""
        if reason.error is None:
            return "", None
        text = wire.cut(f"{type(reason.error).__name__}: {reason.error}")
        payload = None
        with contextlib.suppress(CodecError):
            payload = self._codec.encode(reason.error)
        return text, payload

    def unbox_reason(self, env: wire.Envelope, peer: Peer | None) -> ExitReason:
        """The ExitReason a DOWN or CHILD_EXIT carries."""
        header = env.header
        assert isinstance(header, wire.Down | wire.ChildExit)
        error: BaseException | None = None
        if env.tag is not None:
            with contextlib.suppress(CodecError):
                decoded = self.payload(env, peer)
                error = decoded if isinstance(decoded, BaseException) else None
        if error is None and header.kind == "crashed":
            error = ActorError(header.error or "crashed")
        return ExitReason(header.kind, error)

    # ------------------------------------------------------------------ loss

    def lost(self, link: Link, why: str) -> None:
        """``link``'s node is gone: its pending requests fail, its asks are abandoned."""
        for rid, pending in list(self._pending.items()):
            if pending.link is link and not pending.done.is_set():
                pending.error = ActorStoppedError(f"{why} before answering request {rid}")
                pending.finish()
        for asker, rid in [key for key in self._serving if key[0] is link]:
            reply = self._served(asker, rid)
            if reply is not None:
                reply.abandon()  # nobody is left to answer


def _error(env: wire.Envelope, value: object) -> BaseException:
    header = env.head(wire.Reply)
    if isinstance(value, BaseException):
        if header.tb:
            value.add_note(f"remote traceback (node {header.node or '?'}):\n{header.tb}")
        return value
    return ActorError(
        header.message or "the remote handler failed",
        type_name=header.type,
        traceback_text=header.tb,
    )
