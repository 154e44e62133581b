"""CURVE MESSAGE boxes with as few copies as Python allows.

A MESSAGE is ``\\x07MESSAGE``, an 8-byte nonce, then libsodium's box of one
flags byte followed by the frame. PyNaCl's public ``crypto_box_*`` functions
return fresh ``bytes`` through a zero-filled scratch buffer, which costs three
extra passes over the data: at 1 MiB that is more than the encryption itself.
So when PyNaCl's compiled libsodium binding is available (it is what PyNaCl's
own public functions call), the box is written straight into the outgoing
buffer and, for big frames, read straight out of the received one. Otherwise
the public API is used, with the same bytes on the wire (tests compare all
three paths).
"""

from __future__ import annotations

from typing import Any, Final

from nacl.bindings import crypto_box_afternm, crypto_box_open_afternm
from nacl.exceptions import CryptoError

__all__ = ["HEADER_SIZE", "MAC_SIZE", "open_message", "seal_message"]

MESSAGE_HEADER: Final = b"\x07MESSAGE"
MAC_SIZE: Final = 16
HEADER_SIZE: Final = len(MESSAGE_HEADER) + 8  # name, then the short nonce

try:
    from nacl import _sodium

    _ffi: Any = _sodium.ffi
    _lib: Any = _sodium.lib
except ImportError:  # pragma: no cover - a PyNaCl without its cffi module
    _ffi = _lib = None

# Big frames use libsodium's "easy" calls, which need no zero padding (2.3x
# faster than PyNaCl's functions at 1 MiB); they are slower than the classic
# calls around 1 KiB, so small frames use the classic ones (17 % faster than
# PyNaCl's functions at 64 B, by skipping their copies and checks).
IN_PLACE_FROM: Final = 32 * 1024


def _seal_raw(prefix: bytes, nonce: bytes, plain: bytes, key: bytes) -> bytearray:
    out = bytearray(HEADER_SIZE + MAC_SIZE + len(plain))
    out[:8] = MESSAGE_HEADER
    out[8:HEADER_SIZE] = nonce
    target = _ffi.from_buffer(out)
    if _lib.crypto_box_easy_afternm(target + HEADER_SIZE, plain, len(plain), prefix + nonce, key):
        raise CryptoError("libsodium could not seal a CURVE MESSAGE")
    return out


_ZEROS_32: Final = bytes(32)
_ZEROS_16: Final = bytes(16)


def _seal_classic(prefix: bytes, nonce: bytes, plain: bytes, key: bytes) -> bytearray:
    # NaCl's classic box wants 32 zero bytes before the message and writes 16
    # zero bytes before the MAC: exactly where the command name and nonce go.
    padded = _ZEROS_32 + plain
    out = bytearray(len(padded))
    if _lib.crypto_box_afternm(_ffi.from_buffer(out), padded, len(padded), prefix + nonce, key):
        raise CryptoError("libsodium could not seal a CURVE MESSAGE")
    out[:8] = MESSAGE_HEADER
    out[8:HEADER_SIZE] = nonce
    return out


def _open_classic(prefix: bytes, body: bytes, key: bytes) -> tuple[int, bytes]:
    padded = _ZEROS_16 + body[HEADER_SIZE:]  # the zero bytes the classic API requires
    out = bytearray(len(padded))
    nonce = prefix + body[8:HEADER_SIZE]
    if _lib.crypto_box_open_afternm(_ffi.from_buffer(out), padded, len(padded), nonce, key):
        raise CryptoError("CURVE MESSAGE failed authentication")
    return out[32], bytes(memoryview(out)[33:])


def _seal_public(prefix: bytes, nonce: bytes, plain: bytes, key: bytes) -> bytes:
    return MESSAGE_HEADER + nonce + crypto_box_afternm(plain, prefix + nonce, key)


def _open_raw(prefix: bytes, body: bytes, key: bytes) -> tuple[int, bytes]:
    size = len(body) - HEADER_SIZE - MAC_SIZE
    out = bytearray(size)
    nonce = prefix + body[8:HEADER_SIZE]
    source = _ffi.from_buffer(body) + HEADER_SIZE
    if _lib.crypto_box_open_easy_afternm(
        _ffi.from_buffer(out), source, size + MAC_SIZE, nonce, key
    ):
        raise CryptoError("CURVE MESSAGE failed authentication")
    # Leaving the flags byte behind is the one copy that makes the frame bytes.
    return out[0], bytes(memoryview(out)[1:])


def _open_public(prefix: bytes, body: bytes, key: bytes) -> tuple[int, bytes]:
    plain = crypto_box_open_afternm(body[HEADER_SIZE:], prefix + body[8:HEADER_SIZE], key)
    return plain[0], plain[1:]


RAW: Final = _lib is not None and hasattr(_lib, "crypto_box_easy_afternm")
"""True when boxes are made in place through PyNaCl's libsodium binding."""


def seal_message(
    prefix: bytes, nonce: bytes, inner_flags: int, frame: bytes, key: bytes
) -> bytes | bytearray:
    """Build one MESSAGE command body carrying ``frame``.

    Args:
        prefix: The 16-byte nonce prefix of our direction.
        nonce: Our next short nonce (8 bytes, big-endian).
        inner_flags: 0x01 MORE, 0x02 COMMAND.
        frame: The frame to seal.
        key: The precomputed shared key.

    Returns:
        ``\x07MESSAGE``, the nonce, the MAC and the ciphertext.
    """
    plain = bytes((inner_flags,)) + frame
    if not RAW:
        return _seal_public(prefix, nonce, plain, key)
    if len(plain) >= IN_PLACE_FROM:
        return _seal_raw(prefix, nonce, plain, key)
    return _seal_classic(prefix, nonce, plain, key)


def open_message(prefix: bytes, body: bytes, key: bytes) -> tuple[int, bytes]:
    """Open one MESSAGE command body (already checked to be long enough).

    Args:
        prefix: The 16-byte nonce prefix of the peer's direction.
        body: The whole command body, ``\x07MESSAGE`` included.
        key: The precomputed shared key.

    Returns:
        The inner flags and the frame.

    Raises:
        CryptoError: The box fails authentication.
    """
    if not RAW:
        return _open_public(prefix, body, key)
    if len(body) >= IN_PLACE_FROM:
        return _open_raw(prefix, body, key)
    return _open_classic(prefix, body, key)
