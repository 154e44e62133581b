"""Socket types and their routing strategies."""

from ._context import Context
from ._proxy import proxy
from ._pubsub import Pub, Sub, XPub, XSub
from ._reqrep import Rep, Req
from ._router import Router
from ._simple import Dealer, Pair, Pull, Push
from ._socket import Socket, SocketStatistics

__all__ = [
    "Context",
    "Dealer",
    "Pair",
    "Pub",
    "Pull",
    "Push",
    "Rep",
    "Req",
    "Router",
    "Socket",
    "SocketStatistics",
    "Sub",
    "XPub",
    "XSub",
    "proxy",
]
