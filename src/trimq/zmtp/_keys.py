"""Z85 text encoding (rfc 32) and CURVE key helpers.

CURVE keys are 32 raw bytes; people copy them around as 40 characters of Z85,
the ZeroMQ base-85 alphabet. Every API that takes a key accepts either form,
through :func:`curve_key`.
"""

from __future__ import annotations

import struct
from typing import Final

import nacl.bindings
import nacl.public

__all__ = [
    "CURVE_KEY_SIZE",
    "curve_key",
    "curve_keypair",
    "curve_public",
    "z85_decode",
    "z85_encode",
]

CURVE_KEY_SIZE: Final = 32
"""Bytes in a raw CURVE (Curve25519) key."""

_ALPHABET: Final = (
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
)
_DECODE: Final = {c: i for i, c in enumerate(_ALPHABET)}
_POWERS: Final = (85**4, 85**3, 85**2, 85, 1)


def z85_encode(data: bytes | bytearray | memoryview) -> bytes:
    """Encode binary data as Z85 text (rfc 32).

    Args:
        data: A multiple of 4 bytes long.

    Returns:
        ``len(data) * 5 // 4`` ASCII bytes.

    Raises:
        ValueError: The length is not a multiple of 4.
    """
    raw = bytes(data)
    if len(raw) % 4:
        raise ValueError(f"Z85 encodes whole 4-byte groups; got {len(raw)} bytes")
    out = bytearray()
    for (word,) in struct.iter_unpack(">I", raw):
        out += bytes(_ALPHABET[word // p % 85] for p in _POWERS)
    return bytes(out)


def z85_decode(text: bytes | bytearray | str) -> bytes:
    """Decode Z85 text (rfc 32) to binary.

    Args:
        text: A multiple of 5 characters of the Z85 alphabet (``str`` or ASCII bytes).

    Returns:
        ``len(text) * 4 // 5`` bytes.

    Raises:
        ValueError: The length is not a multiple of 5, or a character is not Z85.
    """
    raw = _ascii(text, "Z85 text") if isinstance(text, str) else bytes(text)
    if len(raw) % 5:
        raise ValueError(f"Z85 text comes in 5-character groups; got {len(raw)} characters")
    out = bytearray()
    for i in range(0, len(raw), 5):
        word = 0
        for j, c in enumerate(raw[i : i + 5], start=i):
            digit = _DECODE.get(c)
            if digit is None:
                raise ValueError(f"{chr(c)!r} at position {j} is not a Z85 character")
            word = word * 85 + digit
        if word > 0xFFFFFFFF:
            raise ValueError(f"Z85 group {raw[i : i + 5]!r} decodes past 32 bits")
        out += struct.pack(">I", word)
    return bytes(out)


def _ascii(text: str, what: str) -> bytes:
    # Not errors="replace": its "?" is a Z85 digit, so a stray non-ASCII
    # character would silently decode to a different key.
    try:
        return text.encode("ascii")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{what} has non-ASCII character {text[exc.start]!r} at position {exc.start}"
        ) from None


def curve_key(value: bytes | bytearray | memoryview | str, what: str = "CURVE key") -> bytes:
    """Normalise a CURVE key given as 32 raw bytes or 40 characters of Z85.

    Args:
        value: The key.
        what: How to name it in an error, e.g. ``"curve_serverkey"``.

    Returns:
        The 32 raw bytes.

    Raises:
        ValueError: Neither 32 bytes nor 40 Z85 characters.
        TypeError: Not bytes-like or str.
    """
    if isinstance(value, str):
        value = _ascii(value, what)
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"{what} must be bytes or str, got {type(value).__name__}")
    raw = bytes(value)
    if len(raw) == CURVE_KEY_SIZE:
        return raw
    if len(raw) == 40:
        try:
            return z85_decode(raw)
        except ValueError as exc:
            raise ValueError(f"{what} is 40 characters but not valid Z85: {exc}") from None
    raise ValueError(
        f"{what} must be 32 raw bytes or 40 Z85 characters, got {len(raw)} bytes "
        "(make a key pair with trimq.curve_keypair() or 'trimq keygen NAME')"
    )


def curve_keypair() -> tuple[bytes, bytes]:
    """Generate a new CURVE key pair, like ``zmq.curve_keypair()``.

    Returns:
        ``(public, secret)``, each 40 bytes of Z85 text. Keep the secret one secret.
    """
    public, secret = nacl.bindings.crypto_box_keypair()
    return z85_encode(public), z85_encode(secret)


def curve_public(secret: bytes | bytearray | memoryview | str) -> bytes:
    """Compute the public key of a CURVE secret key, like ``zmq.curve_public()``.

    Args:
        secret: The secret key, raw or Z85.

    Returns:
        The public key as 40 bytes of Z85 text.
    """
    private = nacl.public.PrivateKey(curve_key(secret, "secret key"))
    return z85_encode(bytes(private.public_key))
