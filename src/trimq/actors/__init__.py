"""trimq.actors: actors as plain Python classes, on trimq sockets.

Example::

    import trio
    from trimq import actors

    class Counter(actors.Actor):
        def __init__(self, start: int = 0) -> None:
            self.count = start

        def add(self, n: int) -> int:
            self.count += n
            return self.count

    async def main():
        async with actors.open_node() as node:
            counter = await node.spawn(Counter, 10)
            await counter.tell("add", 1)
            print(await counter.ask("add", 2))  # 13
            print(await counter.proxy.add(3))  # 16

    trio.run(main)

Each actor is a trio task that takes its messages one at a time from an
inproc PAIR mailbox. Within a process, messages pass as the Python objects
themselves, never copied or pickled: a mutable argument is shared with the
actor, so send values you will not change afterwards (or copies). Only a
message that leaves the process is encoded, by a :class:`Codec`.

Nodes connect to each other over ZMTP (``open_node(listen=...)``,
:meth:`Node.connect`): refs to actors on other nodes work like local ones.

.. versionadded:: 0.1
"""

from ._actor import Actor as Actor
from ._codec import Codec as Codec
from ._codec import CodecError as CodecError
from ._codec import DefaultCodec as DefaultCodec
from ._codec import PlainLimits as PlainLimits
from ._errors import ActorError as ActorError
from ._errors import ActorNotFoundError as ActorNotFoundError
from ._errors import ActorStoppedError as ActorStoppedError
from ._errors import LinkedActorError as LinkedActorError
from ._errors import RestartIntensityError as RestartIntensityError
from ._exit import ExitReason as ExitReason
from ._link import NodeRef as NodeRef
from ._link import PeerLimits as PeerLimits
from ._node import Node as Node
from ._node import current_node as current_node
from ._node import open_node as open_node
from ._ref import ActorRef as ActorRef
from ._supervisor import REPORTS as REPORTS
from ._supervisor import ChildSpec as ChildSpec
from ._supervisor import Supervisor as Supervisor
from ._supervisor import SupervisorReport as SupervisorReport
from ._timer import Timer as Timer

__all__ = [
    "REPORTS",
    "Actor",
    "ActorError",
    "ActorNotFoundError",
    "ActorRef",
    "ActorStoppedError",
    "ChildSpec",
    "Codec",
    "CodecError",
    "DefaultCodec",
    "ExitReason",
    "LinkedActorError",
    "Node",
    "NodeRef",
    "PeerLimits",
    "PlainLimits",
    "RestartIntensityError",
    "Supervisor",
    "SupervisorReport",
    "Timer",
    "current_node",
    "open_node",
]
