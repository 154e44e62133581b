"""ZMTP 3 frame layout: flag bits, size limits and header encoding.

A frame is a flags byte, then the body size as one byte, or as a big-endian
u64 when the LONG flag is set, then the body. The parsing loops live in
``_connection.py`` because they must keep their state in locals to be fast;
this module holds the constants and the pieces shared by encoder and decoder.
"""

from __future__ import annotations

import struct
from typing import Final

from .._errors import MessageTooLargeError

__all__ = [
    "FLAG_COMMAND",
    "FLAG_LONG",
    "FLAG_MORE",
    "LONG_HEADER",
    "MAX_COMMAND_SIZE",
    "MAX_FRAME_SIZE",
    "NOCOPY_THRESHOLD",
    "SHORT_HEADERS",
    "SHORT_HEADERS_MORE",
    "command_too_large",
    "encode_command_frame",
    "frame_header",
    "impossible_frame",
    "message_too_large",
]

FLAG_MORE: Final = 0x01
FLAG_LONG: Final = 0x02
FLAG_COMMAND: Final = 0x04

MAX_FRAME_SIZE: Final = 1 << 47
"""Frame lengths at or above this (128 TiB) are refused outright, whatever
``maxmsgsize`` says: no real peer sends them, and a hostile u64 length must not
make us try to buffer it."""

MAX_COMMAND_SIZE: Final = 1 << 20
"""Largest command body (1 MiB) accepted. Real commands are tiny (READY with
metadata, PING, SUBSCRIBE) apart from user metadata and subscription topics,
and libzmq puts no bound on either, so this is generous; its job is only to
stop a peer from making us buffer an endless command. Frames carrying
encrypted data (CURVE MESSAGE) after the handshake are data, not subject to it."""

NOCOPY_THRESHOLD: Final = 32 * 1024
"""Frame bodies at least this large are handed to the transport as their own
chunk instead of being copied into the coalescing buffer."""

LONG_HEADER: Final = struct.Struct(">BQ")
"""Flags byte plus 8-byte size, for bodies over 255 bytes."""

SHORT_HEADERS: Final[tuple[bytes, ...]] = tuple(bytes((0, n)) for n in range(256))
"""Precomputed headers of last (or only) data frames with bodies of 0-255 bytes."""

SHORT_HEADERS_MORE: Final[tuple[bytes, ...]] = tuple(bytes((FLAG_MORE, n)) for n in range(256))
"""Precomputed headers of non-final data frames with bodies of 0-255 bytes."""


def frame_header(flags: int, size: int) -> bytes:
    """Header for a frame of ``size`` body bytes; LONG is added only when needed,
    as libzmq does, since some decoders expect the short form for small frames.

    Args:
        flags: MORE and/or COMMAND bits (never LONG; it is derived from ``size``).
        size: Body length in bytes.

    Returns:
        The 2- or 9-byte header.
    """
    if size < 256:
        return bytes((flags, size))
    return LONG_HEADER.pack(flags | FLAG_LONG, size)


def encode_command_frame(body: bytes) -> bytes:
    """A command frame (COMMAND flag, never MORE) around a command body.

    Args:
        body: u8 name length, name, data, as built by ``_commands``.

    Returns:
        The wire bytes.
    """
    return frame_header(FLAG_COMMAND, len(body)) + body


def impossible_frame(size: int) -> MessageTooLargeError:
    """The error for a frame length at or over :data:`MAX_FRAME_SIZE`."""
    return MessageTooLargeError(
        f"frame length {size} is impossible (limit 2**47); the peer is broken or hostile"
    )


def message_too_large(total: int, limit: int) -> MessageTooLargeError:
    """The error for a data message growing past ``maxmsgsize``."""
    return MessageTooLargeError(
        f"peer is sending a message of at least {total} bytes; maxmsgsize is {limit}"
    )


def command_too_large(size: int) -> MessageTooLargeError:
    """The error for a command frame over :data:`MAX_COMMAND_SIZE`."""
    return MessageTooLargeError(
        f"peer is sending a {size}-byte command frame; commands are limited to "
        f"{MAX_COMMAND_SIZE} bytes"
    )
