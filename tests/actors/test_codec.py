"""The serialization seam: tags, round trips, and what decoding refuses."""

from __future__ import annotations

import os
import pickle
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trimq import actors

codec = actors.DefaultCodec()

plain_leaves = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary()
)
plain_data = st.recursive(
    plain_leaves,
    lambda inner: (
        st.lists(inner)
        | st.lists(inner).map(tuple)
        | st.dictionaries(st.text() | st.integers(), inner)
        | st.frozensets(st.integers() | st.text())
    ),
    max_leaves=30,
)


def _only_plain(obj: object) -> bool:
    if obj is None or type(obj) in (bool, int, float, str, bytes, bytearray):
        return True
    if isinstance(obj, dict) and type(obj) is dict:
        return all(_only_plain(k) and _only_plain(v) for k, v in obj.items())
    if isinstance(obj, list | tuple | set | frozenset) and type(obj) in (
        list,
        tuple,
        set,
        frozenset,
    ):
        return all(_only_plain(item) for item in obj)
    return False


def test_bytes_travel_untouched() -> None:
    payload = b"x" * 100_000
    tag, data = codec.encode(payload)
    assert tag == b"b"
    assert data is payload  # no copy, no encoding
    assert codec.decode(tag, data) is payload


@settings(max_examples=200, deadline=None)
@given(plain_data)
def test_plain_data_round_trips_with_the_plain_encoding(obj: Any) -> None:
    tag, data = codec.encode(obj)
    assert tag == (b"b" if type(obj) is bytes else b"p")
    assert codec.decode(tag, data) == obj  # no allow_code needed


class Point:
    def __init__(self, x: int) -> None:
        self.x = x


@pytest.mark.parametrize(
    "obj",
    [Point(3), ValueError("boom"), complex(1, 2), {"nested": Point(1)}, [lambda: 7]],
    ids=["instance", "exception", "complex", "nested-instance", "lambda"],
)
def test_everything_else_is_code_and_needs_allow_code(obj: Any) -> None:
    tag, data = codec.encode(obj)
    assert tag == b"c"
    with pytest.raises(actors.CodecError, match="refusing to unpickle code"):
        codec.decode(tag, data)
    back = codec.decode(tag, data, allow_code=True)
    assert type(back) is type(obj)


def test_classes_travel_by_value() -> None:
    """A class defined here (not importable by name elsewhere) goes by value."""

    class Local:
        def hello(self) -> str:
            return "hi"

    tag, data = codec.encode(Local)
    assert tag == b"c"
    rebuilt = codec.decode(tag, data, allow_code=True)
    assert rebuilt().hello() == "hi"  # type: ignore[operator]


def test_a_forged_plain_payload_cannot_name_code() -> None:
    """A pickle that would call os.system, sent under the plain tag, builds nothing."""
    forged = pickle.dumps(os.system)
    for allow_code in (False, True):
        with pytest.raises(actors.CodecError, match=r"may not name posix\.system|nt\.system"):
            codec.decode(b"p", forged, allow_code=allow_code)


def test_unknown_tags_and_unencodable_payloads() -> None:
    with pytest.raises(actors.CodecError, match="unknown payload encoding"):
        codec.decode(b"z", b"")
    with pytest.raises(actors.CodecError, match="cannot encode lock"):
        codec.encode(threading.Lock())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_plain_payloads_give_plain_data_or_a_codec_error(data: bytes) -> None:
    try:
        obj = codec.decode(b"p", data)
    except actors.CodecError:
        return
    assert _only_plain(obj)


@settings(max_examples=300, deadline=None)
@given(plain_data, st.data())
def test_mutated_plain_payloads_give_plain_data_or_a_codec_error(
    obj: Any, draw: st.DataObject
) -> None:
    _, data = codec.encode([obj])
    raw = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 4))):
        raw[draw.draw(st.integers(0, len(raw) - 1))] = draw.draw(st.integers(0, 255))
    try:
        back = codec.decode(b"p", bytes(raw))
    except actors.CodecError:
        return
    assert _only_plain(back)


async def test_a_node_carries_its_codec() -> None:
    class Upper:
        def encode(self, obj: object) -> tuple[bytes, bytes]:
            return b"u", str(obj).upper().encode()

        def decode(self, tag: bytes, data: bytes, *, allow_code: bool = False) -> object:
            return data.decode()

    async with actors.open_node() as node:
        assert isinstance(node.codec, actors.DefaultCodec)
    custom = Upper()
    async with actors.open_node(codec=custom) as node:
        assert node.codec is custom
        assert node.codec.decode(*node.codec.encode("hi")) == "HI"
