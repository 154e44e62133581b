"""Transports: endpoints, pipes, and the tasks that move ZMTP over trio streams."""

from ._endpoint import Endpoint, parse_endpoint
from ._engine import Outcome, run_engine
from ._inproc import InprocRegistry
from ._owner import PipeOwner
from ._pipe import NO_ITEMS, MsgQueue, Pipe, Waiters, inproc_pipe_pair
from ._security import Security
from ._session import connect_loop, next_delay, serve_listener
from ._streams import Listener, open_listener, open_stream, peer_credentials, peer_ip

__all__ = [
    "NO_ITEMS",
    "Endpoint",
    "InprocRegistry",
    "Listener",
    "MsgQueue",
    "Outcome",
    "Pipe",
    "PipeOwner",
    "Security",
    "Waiters",
    "connect_loop",
    "inproc_pipe_pair",
    "next_delay",
    "open_listener",
    "open_stream",
    "parse_endpoint",
    "peer_credentials",
    "peer_ip",
    "run_engine",
    "serve_listener",
]
