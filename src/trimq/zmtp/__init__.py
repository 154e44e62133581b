"""Sans-I/O ZMTP 3.1 codec: greeting, NULL/PLAIN/CURVE handshakes, framing, commands, ZAP.

Everything here is pure and synchronous, with no trio import, so it can be
driven by any I/O layer and fuzzed cheaply. :class:`ZmtpConnection` is the
entry point.

.. versionadded:: 0.1
"""

from ._connection import ZmtpConnection as ZmtpConnection
from ._curve import CurveClientMechanism as CurveClientMechanism
from ._curve import CurveServerKeys as CurveServerKeys
from ._curve import CurveServerMechanism as CurveServerMechanism
from ._encoder import Chunks as Chunks
from ._events import AuthRequest as AuthRequest
from ._events import Cancel as Cancel
from ._events import Event as Event
from ._events import Frames as Frames
from ._events import HandshakeComplete as HandshakeComplete
from ._events import Ping as Ping
from ._events import Pong as Pong
from ._events import Subscribe as Subscribe
from ._frames import FLAG_COMMAND as FLAG_COMMAND
from ._frames import FLAG_LONG as FLAG_LONG
from ._frames import FLAG_MORE as FLAG_MORE
from ._frames import MAX_COMMAND_SIZE as MAX_COMMAND_SIZE
from ._frames import MAX_FRAME_SIZE as MAX_FRAME_SIZE
from ._frames import NOCOPY_THRESHOLD as NOCOPY_THRESHOLD
from ._greeting import GREETING_SIZE as GREETING_SIZE
from ._greeting import encode_greeting as encode_greeting
from ._keys import curve_key as curve_key
from ._keys import curve_keypair as curve_keypair
from ._keys import curve_public as curve_public
from ._keys import z85_decode as z85_decode
from ._keys import z85_encode as z85_encode
from ._mechanisms import HandshakeStep as HandshakeStep
from ._mechanisms import Mechanism as Mechanism
from ._mechanisms import NullMechanism as NullMechanism
from ._plain import PlainClientMechanism as PlainClientMechanism
from ._plain import PlainServerMechanism as PlainServerMechanism
from ._sockettype import SocketType as SocketType
from ._sockettype import peer_allowed as peer_allowed
from ._zap import ZAP_ENDPOINT as ZAP_ENDPOINT
from ._zap import ZapError as ZapError
from ._zap import ZapReply as ZapReply
from ._zap import ZapRequest as ZapRequest

__all__ = [
    "FLAG_COMMAND",
    "FLAG_LONG",
    "FLAG_MORE",
    "GREETING_SIZE",
    "MAX_COMMAND_SIZE",
    "MAX_FRAME_SIZE",
    "NOCOPY_THRESHOLD",
    "ZAP_ENDPOINT",
    "AuthRequest",
    "Cancel",
    "Chunks",
    "CurveClientMechanism",
    "CurveServerKeys",
    "CurveServerMechanism",
    "Event",
    "Frames",
    "HandshakeComplete",
    "HandshakeStep",
    "Mechanism",
    "NullMechanism",
    "Ping",
    "PlainClientMechanism",
    "PlainServerMechanism",
    "Pong",
    "SocketType",
    "Subscribe",
    "ZapError",
    "ZapReply",
    "ZapRequest",
    "ZmtpConnection",
    "curve_key",
    "curve_keypair",
    "curve_public",
    "encode_greeting",
    "peer_allowed",
    "z85_decode",
    "z85_encode",
]
