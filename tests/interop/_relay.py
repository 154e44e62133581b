"""A recording TCP relay between two real peers, and a small ZMTP 3 frame reader.

The relay forwards bytes unchanged in both directions and keeps a copy, so a
test can check what trimq or libzmq actually put on the wire (SUBSCRIBE
commands rather than 0x01 messages, PING/PONG) while both ends stay real.
The frame reader is written from the spec here, independently of trimq's codec.
"""

from __future__ import annotations

import struct

import attrs
import trio

__all__ = ["Frame", "Relay", "parse_frames", "start_relay", "tcp_port"]

GREETING_SIZE = 64
FLAG_MORE, FLAG_LONG, FLAG_COMMAND = 0x01, 0x02, 0x04


@attrs.frozen
class Frame:
    flags: int
    body: bytes

    @property
    def is_command(self) -> bool:
        return bool(self.flags & FLAG_COMMAND)

    @property
    def command_name(self) -> bytes:
        assert self.is_command
        return self.body[1 : 1 + self.body[0]]

    @property
    def command_data(self) -> bytes:
        return self.body[1 + self.body[0] :]


def parse_frames(stream: bytes) -> list[Frame]:
    """The complete frames after the 64-byte greeting (a trailing partial frame is ignored)."""
    frames = []
    pos = GREETING_SIZE
    while pos + 2 <= len(stream):
        flags = stream[pos]
        if flags & FLAG_LONG:
            if pos + 9 > len(stream):
                break
            (size,) = struct.unpack_from(">Q", stream, pos + 1)
            start = pos + 9
        else:
            size = stream[pos + 1]
            start = pos + 2
        if start + size > len(stream):
            break
        frames.append(Frame(flags, bytes(stream[start : start + size])))
        pos = start + size
    return frames


@attrs.define(eq=False)
class Relay:
    """Listens on ``endpoint``; each accepted connection is relayed to ``target``.

    ``upstream`` records what the connecting peer sent, ``downstream`` what the
    target sent back (for the most recent connection).
    """

    endpoint: str
    target_port: int
    upstream: bytearray = attrs.field(factory=bytearray)
    downstream: bytearray = attrs.field(factory=bytearray)

    def upstream_frames(self) -> list[Frame]:
        return parse_frames(bytes(self.upstream))

    def downstream_frames(self) -> list[Frame]:
        return parse_frames(bytes(self.downstream))

    def upstream_commands(self, name: bytes) -> list[Frame]:
        return [f for f in self.upstream_frames() if f.is_command and f.command_name == name]

    def downstream_commands(self, name: bytes) -> list[Frame]:
        return [f for f in self.downstream_frames() if f.is_command and f.command_name == name]


async def _pump(src: trio.SocketStream, dst: trio.SocketStream, record: bytearray) -> None:
    try:
        while data := await src.receive_some(65536):
            record += data
            await dst.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await dst.aclose()


async def _serve(relay: Relay, listener: trio.SocketListener) -> None:
    async with listener, trio.open_nursery() as nursery:
        while True:
            client = await listener.accept()
            try:
                server = await trio.open_tcp_stream("127.0.0.1", relay.target_port)
            except OSError:
                await client.aclose()  # the target is down: refuse, like it would
                continue
            relay.upstream.clear()
            relay.downstream.clear()
            nursery.start_soon(_pump, client, server, relay.upstream)
            nursery.start_soon(_pump, server, client, relay.downstream)


async def start_relay(nursery: trio.Nursery, target_port: int) -> Relay:
    """Start a relay to ``127.0.0.1:target_port`` in ``nursery``; it runs until cancelled."""
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listener.socket.getsockname()[1]
    relay = Relay(f"tcp://127.0.0.1:{port}", target_port)
    nursery.start_soon(_serve, relay, listener)
    return relay


def tcp_port(endpoint: str) -> int:
    """The port of a ``tcp://host:port`` endpoint."""
    return int(endpoint.rsplit(":", 1)[1])
