"""The serialization seam: tags, round trips, and what decoding refuses."""

from __future__ import annotations

import math
import os
import pickle
import struct
import sys
import threading
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trimq import actors
from trimq.actors import PlainLimits
from trimq.actors._plain import NotPlain, PlainFormat

codec = actors.DefaultCodec()
LIMITS = PlainLimits()
pack = msgspec.msgpack.Encoder().encode
Ext = msgspec.msgpack.Ext

MERSENNE = 2**61 - 1  # every multiple of it hashes to 0

hashable_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**100), max_value=2**100)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
)
hashables = st.recursive(
    hashable_leaves,
    lambda inner: st.lists(inner, max_size=4).map(tuple) | st.frozensets(inner, max_size=4),
    max_leaves=8,
)
plain_leaves = hashable_leaves | st.floats() | st.binary().map(bytearray)
plain_data = st.recursive(
    plain_leaves,
    lambda inner: (
        st.lists(inner)
        | st.lists(inner).map(tuple)
        | st.dictionaries(st.text(), inner)
        | st.dictionaries(st.text() | st.integers() | hashables, inner)
        | st.sets(hashables, max_size=5)
        | st.frozensets(hashables, max_size=5)
    ),
    max_leaves=30,
)


def assert_same(a: object, b: object) -> None:
    """``a`` and ``b`` are equal and of the same exact type, at every level."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, float):
        assert isinstance(b, float)
        assert struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b))
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple)
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, dict):
        assert isinstance(b, dict)
        assert a.keys() == b.keys()
        twins = {k: k for k in b}
        for k, v in a.items():
            assert_same(k, twins[k])
            assert_same(v, b[k])
    elif isinstance(a, set | frozenset):
        assert isinstance(b, set | frozenset)
        assert a == b
        twins = {x: x for x in b}
        for x in a:
            assert_same(x, twins[x])
    else:
        assert a == b


def is_plain(obj: object) -> bool:
    if type(obj) in (type(None), bool, int, float, str, bytes, bytearray):
        return True
    if type(obj) is dict:
        return all(is_plain(k) and is_plain(v) for k, v in obj.items())
    if type(obj) in (list, tuple, set, frozenset):
        return all(is_plain(item) for item in obj)  # type: ignore[attr-defined]
    return False


def deep_size(obj: object) -> int:
    """sys.getsizeof of ``obj`` and all it holds, each object counted once."""
    seen: set[int] = set()
    todo = [obj]
    total = 0
    while todo:
        x = todo.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        total += sys.getsizeof(x)
        if type(x) is dict:
            todo.extend(x.keys())
            todo.extend(x.values())
        elif type(x) in (list, tuple, set, frozenset):
            todo.extend(x)  # type: ignore[arg-type]
    return total


def refused(data: bytes, match: str, **kwargs: Any) -> None:
    with pytest.raises(actors.CodecError, match=match):
        codec.decode(b"p", data, **kwargs)


def array32(n: int) -> bytes:
    return b"\xdd" + n.to_bytes(4, "big")


# -- what travels how ----------------------------------------------------------


def test_bytes_travel_untouched() -> None:
    payload = b"x" * 100_000
    tag, data = codec.encode(payload)
    assert tag == b"b"
    assert data is payload  # no copy, no encoding
    assert codec.decode(tag, data) is payload


@settings(max_examples=300, deadline=None)
@given(plain_data)
def test_plain_data_round_trips_with_exact_types(obj: Any) -> None:
    tag, data = codec.encode(obj)
    assert tag == (b"b" if type(obj) is bytes else b"a" if is_arguments(obj) else b"p")
    for allow_code in (False, True):
        assert_same(codec.decode(tag, data, allow_code=allow_code), obj)


def is_arguments(obj: Any) -> bool:
    """A call's ``(args, kwargs)``: a tuple and a dict with str keys."""
    return (
        type(obj) is tuple
        and len(obj) == 2
        and type(obj[0]) is tuple
        and type(obj[1]) is dict
        and all(type(k) is str for k in obj[1])
    )


arguments = st.tuples(
    st.lists(plain_data, max_size=4).map(tuple),
    st.dictionaries(st.text(max_size=8), plain_data, max_size=4),
)


@settings(max_examples=300, deadline=None)
@given(arguments)
def test_call_arguments_travel_in_their_own_shape(obj: Any) -> None:
    tag, data = codec.encode(obj)
    assert tag == b"a"
    for allow_code in (False, True):
        assert_same(codec.decode(tag, data, allow_code=allow_code), obj)


@pytest.mark.parametrize(
    "data",
    [
        msgspec.msgpack.encode([[1], {"a": 1}, 3]),  # three items
        msgspec.msgpack.encode([[1], {1: 1}]),  # a key that is not a str
        msgspec.msgpack.encode({"a": 1}),  # not an array
        msgspec.msgpack.encode([[1], [1]]),  # kwargs not a map
    ],
)
def test_arguments_of_another_shape_are_refused(data: bytes) -> None:
    for allow_code in (False, True):
        with pytest.raises(actors.CodecError):
            codec.decode(b"a", data, allow_code=allow_code)


@pytest.mark.parametrize(
    "obj",
    [
        (("hello", 42), {}),
        {"n": 1, "name": "x"},
        list(range(10_000)),
        [{"n": i, "name": "x"} for i in range(10_000)],
        [2**64, -(2**63) - 1, 2**64 - 1, -(2**63), 2**1000],
        {(1, 2): frozenset({(3,), "a"}), 1: {1.5}, "s": bytearray(b"\0")},
        ((((),),),),
        [-0.0, math.inf, -math.inf],
    ],
    ids=["call", "dict", "ints", "dicts", "big-ints", "keys", "nested-tuples", "floats"],
)
def test_plain_examples_round_trip(obj: Any) -> None:
    tag, data = codec.encode(obj)
    assert tag == (b"a" if is_arguments(obj) else b"p")
    assert_same(codec.decode(tag, data), obj)


def test_the_wire_format_is_messagepack() -> None:
    """Native types as msgpack itself writes them; the rest as documented extensions."""
    assert codec.encode({"n": 1})[1] == pack({"n": 1})
    assert codec.encode([1, "a", None])[1] == pack([1, "a", None])
    assert codec.encode((1, 2))[1] == pack(Ext(1, pack([1, 2])))
    assert codec.encode({3})[1] == pack(Ext(2, pack([3])))
    assert codec.encode(frozenset({3}))[1] == pack(Ext(3, pack([3])))
    assert codec.encode({1: "a"})[1] == pack(Ext(4, pack([1, "a"])))
    assert codec.encode(bytearray(b"ab"))[1] == pack(Ext(5, b"ab"))
    assert codec.encode(2**64)[1] == pack(Ext(6, (2**64).to_bytes(9, "big", signed=True)))
    assert codec.encode(-(2**64))[1] == pack(Ext(6, (-(2**64)).to_bytes(9, "big", signed=True)))
    # A call's (args, kwargs): an array of the positional ones and a map, tagged "a".
    assert codec.encode(((1, "a"), {"k": 2})) == (b"a", pack([[1, "a"], {"k": 2}]))


class Point:
    def __init__(self, x: int) -> None:
        self.x = x


class MyList(list[int]):
    pass


class MyStr(str):
    __slots__ = ()


@pytest.mark.parametrize(
    "obj",
    [
        Point(3),
        ValueError("boom"),
        complex(1, 2),
        {"nested": Point(1)},
        [lambda: 7],
        MyList([1]),
        (MyStr("s"),),
        {MyStr("k"): 1},
    ],
    ids=[
        "instance",
        "exception",
        "complex",
        "nested-instance",
        "lambda",
        "list-subclass",
        "str-subclass",
        "key-subclass",
    ],
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


def test_a_pickle_sent_as_plain_data_is_refused() -> None:
    """The old format (and a pickle that would call os.system) builds nothing."""
    for forged in (pickle.dumps({"n": 1}), pickle.dumps(os.system), pickle.dumps([1] * 100)):
        for allow_code in (False, True):
            with pytest.raises(actors.CodecError):
                codec.decode(b"p", forged, allow_code=allow_code)


def test_unknown_tags_and_unencodable_payloads() -> None:
    with pytest.raises(actors.CodecError, match="unknown payload encoding"):
        codec.decode(b"z", b"")
    with pytest.raises(actors.CodecError, match="cannot encode lock"):
        codec.encode(threading.Lock())


def test_too_deep_or_cyclic_plain_data_cannot_be_encoded() -> None:
    deep: list[Any] = []
    for _ in range(LIMITS.max_depth):
        deep = [deep]
    with pytest.raises(actors.CodecError, match="nested deeper than 64"):
        codec.encode(deep)
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(actors.CodecError, match="or a cycle"):
        codec.encode(cycle)
    tag, data = codec.encode(deep[0])  # 64 levels travel
    assert_same(codec.decode(tag, data), deep[0])
    shared: list[Any] = [1]
    for _ in range(40):
        shared = [shared, shared]  # 2**40 leaves once expanded
    with pytest.raises(actors.CodecError, match="max_items"):
        codec.encode(shared)


def test_the_plain_format_refuses_what_is_not_plain() -> None:
    plain = PlainFormat()
    assert plain.decode(plain.encode({"id": 3})) == {"id": 3}
    with pytest.raises(NotPlain):
        plain.encode(Point(1))


# -- hostile frames --------------------------------------------------------------


def test_deep_nesting_is_refused() -> None:
    refused(b"\x91" * 300_000 + b"\xc0", "nested deeper than 64 levels")
    nested = b"\xc0"
    for _ in range(1000):
        nested = pack(Ext(1, b"\x91" + nested))  # honest lengths: ((((None,),),),...)
    refused(nested, "nested deeper than 64 levels")
    with pytest.raises(actors.CodecError):
        codec.decode(b"p", nested, allow_code=True)
    for tag, frame in ((b"p", b"\x91" * 300_000 + b"\xc0"),):
        with pytest.raises(actors.CodecError):  # trusted: no scan, still a CodecError
            codec.decode(tag, frame, allow_code=True)


def test_a_native_map_of_colliding_int_keys_is_refused() -> None:
    keys = [k * MERSENNE for k in range(1, 80_001)]
    assert {hash(k) for k in keys} == {0}
    frame = b"\xdf" + len(keys).to_bytes(4, "big")
    frame += b"".join(pack(Ext(6, k.to_bytes(16, "big", signed=True))) + b"\xc0" for k in keys)
    refused(frame, "a map key that is not a str")
    small = b"\xdf" + (80_000).to_bytes(4, "big") + b"".join(b"\x00\xc0" for _ in range(80_000))
    refused(small, "a map key that is not a str")


@pytest.mark.parametrize("code", [2, 3, 4])
def test_a_set_or_dict_of_colliding_ints_is_refused(code: int) -> None:
    keys = [k * MERSENNE for k in range(1, 80_001)]
    items = [x for k in keys for x in (k, None)] if code == 4 else keys
    frame = pack(Ext(code, codec.encode(items)[1]))
    refused(frame, "repeat 79999 times, over PlainLimits.max_collisions = 64")


def test_a_set_with_an_unhashable_element_is_a_codec_error() -> None:
    frame = pack(Ext(2, pack([[1, 2]])))
    for allow_code in (False, True):
        refused(frame, "unhashable", allow_code=allow_code)
    refused(pack(Ext(4, pack([{"a": 1}, 2]))), "unhashable")


def test_a_megabyte_of_empty_maps_is_refused() -> None:
    n = 1 << 20
    refused(array32(n) + b"\x80" * n, "over the budget of")
    refused(array32(n) + b"\x90" * n, "over the budget of")
    refused(array32(n) + b"\xd4\x02\x90" * n, "over the budget of")


def test_lying_lengths_are_refused() -> None:
    refused(array32(2**32 - 1) + b"\x01" * 5, "declares 4294967295 items but only 5 bytes")
    refused(b"\xdb\xff\xff\xff\xff" + b"abc", "declares 4294967295 bytes but only 3")
    refused(b"\xc9\xff\xff\xff\xff\x01" + b"\x90", "declares 4294967295 bytes")
    # An Ext tuple whose length claims more (or less) than its array.
    refused(b"\xc7\x05\x01\x91\xc7\x05\x01\x91\xc0", "truncated")  # short: msgspec refuses
    refused(b"\x91\xc7\x05\x01\x91\xc7\x05\x01\x91\xc0" * 8, "declares 5 bytes but only 1")
    refused(b"\xc7\x02\x01\x91\xc7\x02\x01\x90" + b"\x00" * 70, "truncated data")
    refused(b"\xd4\x01\x91" + b"\x00" * 70, "declares 1 items but only 0 bytes")
    refused(b"\xd5\x01\x90\x01" + b"\x00" * 70, "does not end with its array")
    refused(b"\xd5\x01\x81\x01" + b"\x00" * 70, "data is not an array")
    refused(b"\xd5\x04\x91\x01" + b"\x00" * 70, "odd number of items")


def test_truncated_trailing_and_unknown_data_is_refused() -> None:
    good = codec.encode([(i, str(i)) for i in range(50)])[1]
    for cut in range(len(good)):
        with pytest.raises(actors.CodecError):
            codec.decode(b"p", good[:cut])
    refused(good[:-1], "declares 5 bytes but only 4 bytes remain")
    refused(codec.encode([1000, 2000] * 50)[1][:-1], "truncated data")
    refused(codec.encode(["abc" * 20, "d"] * 50)[1][:-3], "declares 60 bytes but only 59")
    refused(good + b"\x00", "1 bytes after the value")
    refused(b"\x92\xc1" + b"\x00" * 70, "unknown type byte 0xc1")
    refused(pack(Ext(7, b"")) + b"\x00" * 70, "unknown extension code 7")
    refused(b"\xd6\xff\x00\x00\x00\x01", "unknown extension code -1")  # msgpack timestamp
    refused(b"\x91\xd6\xff\x00\x00\x00\x01" + b"\x00" * 70, "unknown extension code -1")
    refused(pack(Ext(7, b"")), "unknown extension code 7")  # short: the hook refuses


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_plain_payloads_give_plain_data_or_a_codec_error(data: bytes) -> None:
    try:
        obj = codec.decode(b"p", data)
    except actors.CodecError:
        return
    assert is_plain(obj)


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
    assert is_plain(back)


# -- what a frame may cost ---------------------------------------------------

# Bits of msgpack that cost much once decoded: empty containers, shared
# singletons, small extensions.
FRAGMENTS = [
    b"\x80",
    b"\x90",
    b"\xc0",
    b"\xa0",
    b"\xa1a",
    b"\xa2\xc3\xa9",
    b"\xa4\xf0\x9f\x98\x80",
    b"\x01",
    b"\xff",
    b"\xcd\x12\x34",
    b"\xcb" + bytes(8),
    b"\xc4\x00",
    b"\x81\xa0\xc0",
    b"\x81\xa0\x80",
    b"\x91\x90",
    b"\xd4\x01\x90",
    b"\xd4\x02\x90",
    b"\xd4\x03\x90",
    b"\xd5\x02\x91\x01",
    b"\xd5\x04\x92\x01\xc0",
    b"\xd4\x05\x00",
    b"\xd4\x06\x01",
    b"\xd5\x01\x91\x90",
]


def assert_within_budget(frame: bytes, limits: PlainLimits) -> None:
    coder = actors.DefaultCodec(limits=limits)
    try:
        obj = coder.decode(b"p", frame)
    except actors.CodecError:
        return
    assert is_plain(obj)
    assert deep_size(obj) <= limits.size_factor * len(frame) + limits.size_slack


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(FRAGMENTS), st.integers(1, 3000)), max_size=4))
def test_decoded_size_stays_within_the_budget(runs: list[tuple[bytes, int]]) -> None:
    """Whatever the frame, what decoding builds is within the documented multiple."""
    count = sum(n for _, n in runs)
    frame = array32(count) + b"".join(fragment * n for fragment, n in runs)
    assert_within_budget(frame, LIMITS)
    assert_within_budget(frame, PlainLimits(size_factor=64, size_slack=0))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | plain_data.map(lambda o: codec.encode([o])[1]), st.data())
def test_decoded_size_of_random_and_mutated_frames(data: bytes, draw: st.DataObject) -> None:
    raw = bytearray(data)
    for _ in range(draw.draw(st.integers(0, 3)) if raw else 0):
        raw[draw.draw(st.integers(0, len(raw) - 1))] = draw.draw(st.integers(0, 255))
    for limits in (LIMITS, PlainLimits(size_slack=0)):
        assert_within_budget(bytes(raw), limits)


def test_the_budget_admits_ordinary_bulk_data() -> None:
    for obj in (
        [{"n": i, "name": "x"} for i in range(20_000)],
        [{"a": 1}] * 20_000,
        list(range(100_000)),
        [str(i) for i in range(50_000)],
        [(i, i) for i in range(20_000)],
        set(range(50_000)),
    ):
        tag, data = codec.encode(obj)
        assert codec.decode(tag, data) == obj


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


@pytest.mark.parametrize(
    "bad", [{"max_depth": 0}, {"max_items": 0}, {"size_factor": 0}, {"size_slack": -1}]
)
def test_limits_that_make_no_sense_are_refused(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="PlainLimits"):
        PlainLimits(**bad)
