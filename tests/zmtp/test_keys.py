"""Z85 (rfc 32) and CURVE key helpers, checked against pyzmq."""

from __future__ import annotations

import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st
from zmq.utils import z85

from trimq.zmtp._keys import (
    CURVE_KEY_SIZE,
    curve_key,
    curve_keypair,
    curve_public,
    z85_decode,
    z85_encode,
)

FAST = settings(max_examples=300, deadline=None)

# rfc 32's test vector.
RFC_BYTES = bytes.fromhex("864FD26FB559F75B")
RFC_TEXT = b"HelloWorld"

whole_words = st.integers(min_value=0, max_value=64).flatmap(
    lambda n: st.binary(min_size=4 * n, max_size=4 * n)
)


def test_rfc32_vector() -> None:
    assert z85_encode(RFC_BYTES) == RFC_TEXT
    assert z85_decode(RFC_TEXT) == RFC_BYTES
    assert z85_decode(RFC_TEXT.decode()) == RFC_BYTES


@FAST
@given(whole_words)
def test_encode_matches_pyzmq_and_round_trips(data: bytes) -> None:
    text = z85_encode(data)
    assert text == z85.encode(data)
    assert len(text) == len(data) * 5 // 4
    assert z85_decode(text) == data
    assert z85_decode(text.decode("ascii")) == data


@FAST
@given(whole_words)
def test_decode_matches_pyzmq(data: bytes) -> None:
    text = z85.encode(data)
    assert z85_decode(text) == z85.decode(text)


def test_encode_accepts_any_buffer() -> None:
    assert z85_encode(bytearray(RFC_BYTES)) == RFC_TEXT
    assert z85_encode(memoryview(RFC_BYTES)) == RFC_TEXT


@pytest.mark.parametrize("size", [1, 2, 3, 5, 31])
def test_encode_rejects_partial_words(size: int) -> None:
    with pytest.raises(ValueError, match="4-byte groups"):
        z85_encode(bytes(size))


@pytest.mark.parametrize("text", ["H", "Hell", "HelloW", "HelloWorld!"])
def test_decode_rejects_partial_groups(text: str) -> None:
    with pytest.raises(ValueError, match="5-character groups"):
        z85_decode(text)


@pytest.mark.parametrize(
    ("text", "bad", "position"),
    [
        ("Hello Worl", " ", 5),
        ('Hell"', '"', 4),
        ("~ello", "~", 0),
        ("HelloWor,d", ",", 8),
    ],
)
def test_decode_names_the_bad_character(text: str, bad: str, position: int) -> None:
    with pytest.raises(ValueError, match=f"{bad!r} at position {position} is not a Z85"):
        z85_decode(text)


def test_decode_rejects_non_ascii_text() -> None:
    # "?" is a Z85 digit: a non-ASCII character must not quietly become one.
    with pytest.raises(ValueError, match="non-ASCII"):
        z85_decode("Hell\u00e9")


@pytest.mark.parametrize("text", [b"#####", b"%nSc1", b"HelloWorld#####"])
def test_decode_rejects_groups_past_32_bits(text: bytes) -> None:
    # 84 * 85**4 + ... > 2**32 - 1: a well-formed-looking group with no 4-byte value.
    with pytest.raises(ValueError, match="past 32 bits"):
        z85_decode(text)


def test_largest_group_decodes() -> None:
    assert z85_decode(z85_encode(b"\xff" * 4)) == b"\xff" * 4
    assert z85_encode(b"\xff" * 4) == b"%nSc0"


def test_curve_key_accepts_raw_and_z85() -> None:
    public, _ = curve_keypair()
    raw = z85_decode(public)
    assert len(raw) == CURVE_KEY_SIZE
    assert curve_key(raw) == raw
    assert curve_key(bytearray(raw)) == raw
    assert curve_key(memoryview(raw)) == raw
    assert curve_key(public) == raw
    assert curve_key(public.decode()) == raw


@pytest.mark.parametrize("value", [b"", b"x" * 31, b"x" * 33, b"x" * 39, b"x" * 41, "short"])
def test_curve_key_rejects_wrong_lengths(value: bytes | str) -> None:
    with pytest.raises(ValueError, match="32 raw bytes or 40 Z85 characters") as info:
        curve_key(value, "curve_serverkey")
    assert "curve_serverkey" in str(info.value)


def test_curve_key_rejects_40_characters_that_are_not_z85() -> None:
    with pytest.raises(ValueError, match=r"my key is 40 characters but not valid Z85"):
        curve_key(" " * 40, "my key")
    with pytest.raises(ValueError, match="not valid Z85"):
        curve_key("#" * 40)


def test_curve_key_rejects_non_ascii_text() -> None:
    public, _ = curve_keypair()
    with pytest.raises(ValueError, match="non-ASCII"):
        curve_key("\u00e9" + public.decode()[1:], "curve_publickey")


@pytest.mark.parametrize("value", [None, 12, 3.5, ["x"]])
def test_curve_key_rejects_other_types(value: object) -> None:
    with pytest.raises(TypeError, match="must be bytes or str, got"):
        curve_key(value, "curve_secretkey")  # type: ignore[arg-type]


def test_keypair_is_z85_and_matches_pyzmq_curve_public() -> None:
    public, secret = curve_keypair()
    assert len(public) == len(secret) == 40
    assert curve_public(secret) == public
    assert zmq.curve_public(secret) == public


def test_keypairs_differ() -> None:
    assert len({curve_keypair()[1] for _ in range(8)}) == 8


def test_curve_public_accepts_raw_and_str_and_pyzmq_keys() -> None:
    public, secret = zmq.curve_keypair()
    assert curve_public(secret) == public
    assert curve_public(secret.decode()) == public
    assert curve_public(z85.decode(secret)) == public


def test_curve_public_rejects_a_bad_secret() -> None:
    with pytest.raises(ValueError, match="secret key"):
        curve_public(b"too short")
