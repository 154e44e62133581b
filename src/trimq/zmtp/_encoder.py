"""Encoding data messages into wire chunks, after the handshake.

Two variants: :func:`encode_plain` is the hot path (NULL: frames go out as
they are), :func:`encode_wrapped` sends every frame through a mechanism hook
(CURVE). Both append to a caller-supplied ``bytearray`` that already holds any
queued command bytes, so commands keep their place ahead of the data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Final, TypeAlias

from .._errors import LocalProtocolError
from ._commands import CANCEL, SUBSCRIBE, encode_command
from ._frames import (
    FLAG_COMMAND,
    FLAG_LONG,
    FLAG_MORE,
    LONG_HEADER,
    NOCOPY_THRESHOLD,
    SHORT_HEADERS,
    SHORT_HEADERS_MORE,
    encode_command_frame,
    frame_header,
)

__all__ = ["BytesLike", "Chunks", "encode_plain", "encode_wrapped"]

BytesLike: TypeAlias = bytes | bytearray | memoryview
Chunks: TypeAlias = list[bytes | bytearray | memoryview]

_SUBSCRIBE_PREFIX: Final = encode_command(SUBSCRIBE)
_CANCEL_PREFIX: Final = encode_command(CANCEL)
_pack_long = LONG_HEADER.pack
# Measured with CURVE: at 64 KiB a separate write per frame costs more than the
# copy it saves; at 1 MiB the copy costs more.
SEALED_OWN_CHUNK: Final = 256 * 1024


def _flat(frame: BytesLike) -> BytesLike:
    # len() of a memoryview counts items, not bytes, and bytearray += needs a
    # contiguous buffer: normalise the unusual views (rare, so off the fast path).
    if type(frame) is memoryview and (
        frame.itemsize != 1 or frame.ndim != 1 or not frame.c_contiguous
    ):
        return frame.cast("B") if frame.c_contiguous else frame.tobytes()
    return frame


def encode_plain(
    out: bytearray, messages: Iterable[Sequence[BytesLike]], sub_commands: bool
) -> Chunks:
    """Encode messages frame by frame, as NULL sends them.

    Args:
        out: Buffer to append to; becomes the first chunk.
        messages: Non-empty sequences of frames.
        sub_commands: Turn single-frame ``\\x01``/``\\x00`` messages into
            SUBSCRIBE/CANCEL commands (a SUB or XSUB talking to a ZMTP 3.1 peer).

    Returns:
        Chunks for successive ``send_all`` calls: coalesced small frames in
        bytearrays, bodies of ``NOCOPY_THRESHOLD`` bytes or more as themselves.

    Raises:
        LocalProtocolError: A message has no frames.
    """
    chunks: Chunks = []
    short_last = SHORT_HEADERS
    short_more = SHORT_HEADERS_MORE
    for msg in messages:
        last = len(msg) - 1
        if last:
            if last < 0:
                raise LocalProtocolError("a message must have at least one frame")
            for frame in msg[:last]:
                if type(frame) is not bytes:
                    frame = _flat(frame)
                size = len(frame)
                if size < 256:
                    out += short_more[size]
                    out += frame
                    continue
                out += _pack_long(FLAG_LONG | FLAG_MORE, size)
                if size < NOCOPY_THRESHOLD:
                    out += frame
                else:
                    chunks.append(out)
                    chunks.append(frame)
                    out = bytearray()
            frame = msg[last]
            if type(frame) is not bytes:
                frame = _flat(frame)
            size = len(frame)
        else:
            frame = msg[0]
            if type(frame) is not bytes:
                frame = _flat(frame)
            size = len(frame)
            if sub_commands and size and frame[0] < 2:
                prefix = _SUBSCRIBE_PREFIX if frame[0] else _CANCEL_PREFIX
                out += encode_command_frame(prefix + frame[1:])
                continue
        # The last (or only) frame of the message.
        if size < 256:
            out += short_last[size]
            out += frame
            continue
        out += _pack_long(FLAG_LONG, size)
        if size < NOCOPY_THRESHOLD:
            out += frame
        else:
            chunks.append(out)
            chunks.append(frame)
            out = bytearray()
    if out:
        chunks.append(out)
    return chunks


def encode_wrapped(
    out: bytearray,
    messages: Iterable[Sequence[BytesLike]],
    wrap: Callable[[int, bytes], tuple[int, bytes | bytearray]],
    sub_commands: bool,
) -> Chunks:
    """Encode messages through a frame-transforming mechanism (e.g. CURVE).

    Every frame is rebuilt by ``wrap``; results are coalesced into ``out``,
    except those of ``SEALED_OWN_CHUNK`` bytes or more, which become their own
    chunk (copying them costs more than one more write).

    Args:
        out: Buffer to append to.
        messages: Non-empty sequences of frames.
        wrap: The mechanism's ``encode_frame``.
        sub_commands: As for :func:`encode_plain`.

    Returns:
        Chunks for successive ``send_all`` calls (``[]`` if there is nothing to send).

    Raises:
        LocalProtocolError: A message has no frames.
    """
    chunks: Chunks = []
    for msg in messages:
        last = len(msg) - 1
        if last < 0:
            raise LocalProtocolError("a message must have at least one frame")
        if last == 0 and sub_commands:
            only = bytes(msg[0])
            if only and only[0] < 2:
                prefix = _SUBSCRIBE_PREFIX if only[0] else _CANCEL_PREFIX
                flags, body = wrap(FLAG_COMMAND, prefix + only[1:])
                out += frame_header(flags, len(body))
                out += body
                continue
        for i, frame in enumerate(msg):
            flags, body = wrap(FLAG_MORE if i < last else 0, bytes(frame))
            out += frame_header(flags, len(body))
            if len(body) < SEALED_OWN_CHUNK:
                out += body
            else:
                chunks.append(out)
                chunks.append(body)
                out = bytearray()
    if out:
        chunks.append(out)
    return chunks
