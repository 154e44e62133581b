"""trimq: ZeroMQ in pure Python on trio, wire-compatible with libzmq.

Example::

    import trio, trimq

    async def main():
        async with trimq.Context() as ctx:
            pull = ctx.socket(trimq.PULL)
            endpoint = await pull.bind("tcp://127.0.0.1:*")
            push = ctx.socket(trimq.PUSH)
            await push.connect(endpoint)
            await push.send(b"hello")
            print(await pull.recv())

    trio.run(main)
"""

from . import auth as auth
from ._errors import AuthenticationError as AuthenticationError
from ._errors import HandshakeError as HandshakeError
from ._errors import HostUnreachableError as HostUnreachableError
from ._errors import InvalidEndpointError as InvalidEndpointError
from ._errors import LocalProtocolError as LocalProtocolError
from ._errors import MessageTooLargeError as MessageTooLargeError
from ._errors import NotSupportedError as NotSupportedError
from ._errors import ProtocolError as ProtocolError
from ._errors import RemoteProtocolError as RemoteProtocolError
from ._errors import SocketStateError as SocketStateError
from ._errors import TrimqError as TrimqError
from ._errors import UnsupportedTransportError as UnsupportedTransportError
from ._monitor import EventType as EventType
from ._monitor import Monitor as Monitor
from ._monitor import MonitorEvent as MonitorEvent
from ._options import SocketOptions as SocketOptions
from ._peer import Message as Message
from ._peer import Peer as Peer
from .patterns import Context as Context
from .patterns import Socket as Socket
from .patterns import SocketStatistics as SocketStatistics
from .patterns import proxy as proxy
from .zmtp import SocketType as SocketType
from .zmtp import curve_keypair as curve_keypair
from .zmtp import curve_public as curve_public
from .zmtp import z85_decode as z85_decode
from .zmtp import z85_encode as z85_encode

__version__ = "0.1.0"

PAIR = SocketType.PAIR
PUB = SocketType.PUB
SUB = SocketType.SUB
REQ = SocketType.REQ
REP = SocketType.REP
DEALER = SocketType.DEALER
ROUTER = SocketType.ROUTER
PULL = SocketType.PULL
PUSH = SocketType.PUSH
XPUB = SocketType.XPUB
XSUB = SocketType.XSUB

__all__ = [
    "DEALER",
    "PAIR",
    "PUB",
    "PULL",
    "PUSH",
    "REP",
    "REQ",
    "ROUTER",
    "SUB",
    "XPUB",
    "XSUB",
    "AuthenticationError",
    "Context",
    "EventType",
    "HandshakeError",
    "HostUnreachableError",
    "InvalidEndpointError",
    "LocalProtocolError",
    "Message",
    "MessageTooLargeError",
    "Monitor",
    "MonitorEvent",
    "NotSupportedError",
    "Peer",
    "ProtocolError",
    "RemoteProtocolError",
    "Socket",
    "SocketOptions",
    "SocketStateError",
    "SocketStatistics",
    "SocketType",
    "TrimqError",
    "UnsupportedTransportError",
    "__version__",
    "curve_keypair",
    "curve_public",
    "proxy",
    "z85_decode",
    "z85_encode",
]
