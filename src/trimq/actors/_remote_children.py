"""Supervision across nodes: children spawned on other nodes, their exits, their verdicts.

A supervisor here may place a child on another node (``ChildSpec(on=...)``):
SPAWN starts it there, and that node sends CHILD_EXIT when the child's
incarnation ends; the supervisor's verdict goes back as SUPERVISE. When a
node is lost, its children count as ended ("node lost") and their
supervisors start them again elsewhere; the ones left behind are orphans,
ended on that node as soon as it is back (a paused process never noticed
it was cut off). Both ends of each verb are here: what this node asks, and
how it answers.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import cloudpickle
import trio

from . import _wire as wire
from ._codec import CodecError
from ._errors import ActorNotFoundError, ActorStoppedError
from ._exit import ExitReason, Verdict
from ._local import SpawnOptions
from ._ref import ActorRef

if TYPE_CHECKING:
    from .._peer import Peer
    from ._calls import Calls
    from ._link import Link, NetworkOptions
    from ._links import Links
    from ._local import LocalNode

__all__ = ["RemoteChildren"]

log = logging.getLogger("trimq.actors")


class RemoteChildren:
    """This node's supervisors' children on other nodes, and other nodes' children here."""

    def __init__(
        self,
        links: Links,
        calls: Calls,
        local: LocalNode,
        nursery: trio.Nursery,
        options: NetworkOptions,
    ) -> None:
        self._links = links
        self._calls = calls
        self._local = local
        self._nursery = nursery
        self._options = options
        # Our supervisors' children on other nodes: node name -> {(supervisor, child)}.
        self._children: dict[str, set[tuple[ActorRef, ActorRef]]] = {}
        # Children on a lost node that their supervisors replaced: ended on it
        # when it is back, in case it never noticed it was cut off.
        self._orphans: dict[str, set[ActorRef]] = {}
        # Orphans being ended now: a spawn of the same name there waits for it.
        self._ending: dict[ActorRef, trio.Event] = {}

    # ------------------------------------------------------------------ asking

    async def spawn(
        self,
        node: str,
        cls: type,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: SpawnOptions,
    ) -> ActorRef:
        """Start an actor of ``cls`` on ``node``; returns once its ``on_start`` ran.

        The class travels by reference; if that node says it cannot import
        it, the spawn is sent again with the class by value (cloudpickle).

        Raises:
            ActorNotFoundError: ``node`` is not reachable.
            Exception: Whatever the other node's spawn raised.
        """
        if options.name is not None:
            ending = self._ending.get(ActorRef(node, options.name))
            if ending is not None:
                # Else the orphan's end could reach that node after this
                # spawn, and end the new child, which has its name.
                await ending.wait()
        header = wire.Spawn(
            name=options.name,
            mailbox_size=options.mailbox_size,
            shutdown=float(options.shutdown),
            supervisor=options.supervisor,  # on this node
        )
        encode = self._local.codec.encode
        env, peer = await self._calls.request(node, header, encode((cls, args, kwargs)), None)
        if env.head(wire.Reply).missing_module:
            payload = _by_value(encode, (cls, args, kwargs), cls)
            env, peer = await self._calls.request(node, header, payload, None)
        self._calls.outcome(env, peer)
        child = ActorRef(node, env.head(wire.Reply).name)
        if options.supervisor is not None:
            supervisor = ActorRef(self._local.name, options.supervisor)
            self._children.setdefault(node, set()).add((supervisor, child))
        return child

    def children_of(self, supervisor: ActorRef) -> list[ActorRef]:
        """The children ``supervisor`` placed on other nodes."""
        return [c for pairs in self._children.values() for s, c in pairs if s == supervisor]

    async def supervise(self, ref: ActorRef, verdict: Verdict) -> None:
        """Carry out a supervisor's verdict on its child on another node.

        Raises:
            ActorNotFoundError: No such child there, or its node is not reachable.
        """
        env, peer = await self._calls.request(
            ref.node, wire.Supervise(actor=ref.name, verdict=verdict), None, None
        )
        self._calls.outcome(env, peer)
        if verdict == "terminate":
            for pair in list(self._children.get(ref.node, ())):
                if pair[1] == ref:
                    self._children[ref.node].discard(pair)

    def child_exit(self, supervisor: ActorRef, child: ActorRef, reason: ExitReason) -> bool:
        """Tell a supervisor on another node that its child here ended; False
        if that node is unreachable (lost, or never known)."""
        link = self._links.find(supervisor.node)
        if link is None or not link.alive:
            return False
        error, payload = self._calls.box_reason(reason)
        header = wire.ChildExit(
            actor=child.name, supervisor=supervisor.name, kind=reason.kind, error=error
        )
        # Not dropped while that node is reachable: the child waits for its
        # verdict (and if the node is lost meanwhile, node_lost ends the child).
        self._links.send_surely(link, wire.encode_envelope(header, payload))
        return True

    # ------------------------------------------------------------------ node loss

    def lost(self, link: Link) -> None:
        """``link``'s node is gone: its children count as ended there."""
        for supervisor, child in self._children.pop(link.name, set()):
            self._orphans.setdefault(link.name, set()).add(child)
            self._local.child_exit(supervisor, child, ExitReason("node lost"))

    def found(self, link: Link) -> None:
        """``link``'s node is back: end the children replaced while it was not."""
        for orphan in self._orphans.pop(link.name, set()):
            if orphan not in self._ending:
                self._ending[orphan] = trio.Event()
                self._nursery.start_soon(self._end_orphan, orphan)

    async def _end_orphan(self, child: ActorRef) -> None:
        try:
            await self._end_orphan_once(child)
        finally:
            self._ending.pop(child).set()

    async def _end_orphan_once(self, child: ActorRef) -> None:
        # Until its node confirms (or says it has no such child): a replaced
        # child left running there would be a duplicate.
        while True:
            link = self._links.find(child.node)
            if link is None or not link.alive:
                self._orphans.setdefault(child.node, set()).add(child)  # next time it is back
                return
            try:
                with trio.fail_after(self._options.timeout):
                    await self.supervise(child, "terminate")
                return
            except ActorNotFoundError:
                if link.alive:
                    return  # it answered that the child is gone already
            except (ActorStoppedError, trio.TooSlowError):
                pass  # not delivered, or no answer: ask again
            except Exception as exc:  # whatever that node answered: never out of this task
                log.warning("could not end orphan %r on node %r: %r", child.name, child.node, exc)
                return
            await trio.sleep(self._options.heartbeat)

    # ------------------------------------------------------------------ answering

    async def on_spawn(self, link: Link, env: wire.Envelope, peer: Peer | None) -> None:
        """SPAWN: start an actor here, in a task of its own (``on_start`` may wait)."""
        self._nursery.start_soon(self._spawn_here, link, env, peer)

    async def _spawn_here(self, link: Link, env: wire.Envelope, peer: Peer | None) -> None:
        header = env.head(wire.Spawn)
        rid = header.id
        try:
            cls, args, kwargs = self._calls.arguments(env, peer, with_class=True)
        except CodecError as exc:
            # A module or class this host cannot import: the reply says so in
            # a flag of its own, and the asker sends the class by value.
            missing = isinstance(exc.__cause__, ModuleNotFoundError | AttributeError)
            self._calls.reply(link, rid, error=exc, missing_module=missing)
            return
        except Exception as exc:
            self._calls.reply(link, rid, error=exc)
            return
        options = SpawnOptions(
            name=header.name,
            mailbox_size=header.mailbox_size,
            shutdown=header.shutdown,
            supervisor=header.supervisor,
        )
        try:
            ref = await self._local.spawn_here(cls, args, kwargs, options, link.name)
        except Exception as exc:
            self._calls.reply(link, rid, error=exc)
            return
        self._calls.reply(link, rid, name=ref.name)

    async def on_supervise(self, link: Link, env: wire.Envelope, peer: Peer | None) -> None:
        """SUPERVISE: a verdict on a child here, in a task of its own (it waits)."""
        self._nursery.start_soon(self._supervise_here, link, env)

    async def _supervise_here(self, link: Link, env: wire.Envelope) -> None:
        header = env.head(wire.Supervise)
        try:
            await self._local.supervise_here(header.actor, header.verdict, link.name)
        except Exception as exc:
            self._calls.reply(link, header.id, error=exc)
            return
        self._calls.reply(link, header.id)

    async def on_child_exit(self, link: Link, env: wire.Envelope, peer: Peer | None) -> None:
        """CHILD_EXIT: a child we placed on ``link``'s node ended."""
        header = env.head(wire.ChildExit)
        supervisor = ActorRef(self._local.name, header.supervisor)
        child = ActorRef(link.name, header.actor)
        if (supervisor, child) not in self._children.get(link.name, set()):
            return  # not a child we placed there
        self._local.child_exit(supervisor, child, self._calls.unbox_reason(env, peer))


def _by_value(
    encode: Callable[[object], tuple[bytes, bytes]], obj: object, cls: type
) -> tuple[bytes, bytes]:
    # The class's module pickled by value, for this one payload.
    module = sys.modules.get(cls.__module__)
    if module is None or cls.__module__ == "__main__":
        return encode(obj)
    cloudpickle.register_pickle_by_value(module)
    try:
        return encode(obj)
    finally:
        cloudpickle.unregister_pickle_by_value(module)
