"""The node-to-node envelope parser: round trips, and nothing but ProtocolError from junk."""

from __future__ import annotations

import pickle
from typing import Any

import msgspec
import pytest
import trio
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

import trimq
from trimq import actors
from trimq.actors import _wire as wire


def raw_header(kind: bytes, fields: Any, tag: bytes = b"") -> bytes:
    """A first frame with any header at all, as a hostile peer would write it."""
    return kind + b"\0" + tag + msgspec.msgpack.encode(fields)


names = st.text(max_size=40)
ids = st.integers(1, 2**63 - 1)
headers: st.SearchStrategy[wire.Header] = st.one_of(
    st.builds(wire.Hello, name=names, tags=st.lists(names, max_size=5)),
    st.builds(wire.Welcome, name=names, topics=st.lists(names, max_size=5)),
    st.just(wire.Ping()),
    st.just(wire.Who()),
    st.just(wire.Bye()),
    st.builds(wire.Call, actor=names, method=names, id=st.none() | ids),
    st.builds(
        wire.Spawn,
        id=ids,
        name=st.none() | names,
        mailbox_size=st.integers(0, 2**31 - 1),
        shutdown=st.floats(0, 86400),
    ),
    st.builds(wire.Stop, id=ids, actor=names, kill=st.booleans()),
    st.builds(wire.Lookup, id=ids, name=names),
    st.builds(
        wire.Supervise,
        id=ids,
        actor=names,
        verdict=st.sampled_from(["suspend", "restart", "terminate"]),
    ),
    st.builds(wire.Reply, id=ids, ok=st.booleans(), message=st.text(), found=st.booleans()),
    st.builds(wire.Cancel, id=ids),
    st.builds(wire.Monitor, actor=names, watcher=names),
    st.builds(wire.Demonitor, actor=names, watcher=names),
    st.builds(wire.Down, actor=names, watcher=names, kind=st.sampled_from(["stopped", "crashed"])),
    st.builds(
        wire.ChildExit, actor=names, supervisor=names, kind=st.just("killed"), error=st.text()
    ),
    st.builds(wire.Event, topic=names),
    st.builds(wire.TopicsChanged, topics=st.lists(names, max_size=5)),
)
payloads = st.none() | st.tuples(st.sampled_from([b"b", b"p", b"c"]), st.binary())


@settings(max_examples=300, deadline=None)
@given(headers, payloads)
def test_envelopes_round_trip(header: wire.Header, payload: Any) -> None:
    env = wire.decode_envelope(wire.encode_envelope(header, payload))
    assert (env.kind, env.header) == (header.KIND, header)
    assert type(env.header) is type(header)
    assert (env.tag, env.data) == (payload if payload is not None else (None, b""))


def test_every_kind_has_its_header() -> None:
    assert {cls.KIND for cls in wire._HEADERS} == wire.KINDS
    assert len(wire.KINDS) == len(wire._HEADERS)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=6))
def test_random_frames_give_an_envelope_or_a_protocol_error(frames: list[bytes]) -> None:
    try:
        env = wire.decode_envelope(frames)
    except trimq.RemoteProtocolError:
        return
    assert env.kind in wire.KINDS
    assert isinstance(env.header, wire.Header)


@settings(max_examples=500, deadline=None)
@given(headers, st.data())
def test_mutated_headers_give_their_kinds_struct_or_a_protocol_error(
    header: wire.Header, draw: st.DataObject
) -> None:
    frames = wire.encode_envelope(header, (b"p", b"x"))
    raw = bytearray(frames[0])
    for _ in range(draw.draw(st.integers(1, 4))):
        raw[draw.draw(st.integers(0, len(raw) - 1))] = draw.draw(st.integers(0, 255))
    try:
        env = wire.decode_envelope([bytes(raw), frames[1]])
    except trimq.RemoteProtocolError:
        return
    # Whatever survived the mutation is its kind's struct, with fields of their types.
    assert type(env.header) is wire._HEADERS[[c.KIND for c in wire._HEADERS].index(env.kind)]
    assert msgspec.convert(msgspec.structs.asdict(env.header), type(env.header)) == env.header


@pytest.mark.parametrize(
    ("frames", "match"),
    [
        ([wire.CALL + b"\0" + pickle.dumps(print)], "bad call header"),
        ([wire.CALL + b"\0" + b"\xa1" * (wire.MAX_HEADER + 1)], "at most"),
        ([raw_header(wire.CALL, {1: 2})], "bad call header"),
        ([raw_header(wire.CALL, {"actor": "a", "method": "m", "exec": "x"})], "unknown field"),
        ([raw_header(wire.CALL, {"actor": 7, "method": "m"})], "Expected `str`"),
        ([raw_header(wire.CALL, {"method": "m"})], "missing required field `actor`"),
        ([raw_header(wire.CALL, {"actor": "a", "method": "m", "id": 0})], ">= 1"),
        ([raw_header(wire.CALL, {"actor": "a" * 1025, "method": "m"})], "length <= 1024"),
        ([raw_header(wire.SUPERVISE, {"id": 1, "actor": "a", "verdict": "x"})], "Invalid enum"),
        ([raw_header(wire.DOWN, {"actor": "a", "watcher": "w", "kind": "?"})], "Invalid enum"),
        ([raw_header(wire.TOPICS, {"topics": ["t"] * 1025})], "length <= 1024"),
        ([raw_header(wire.HELLO, {"name": "n", "tags": ["t"] * 65})], "length <= 64"),
        ([raw_header(wire.SPAWN, {"id": 1, "mailbox_size": -1})], ">= 0"),
        ([raw_header(wire.PING, {}) + b"\x00"], "trailing"),
        ([raw_header(wire.PING, [])], "Expected `object`"),
        ([b"exec\0" + msgspec.msgpack.encode({})], "unknown message kind"),
        ([b"ping" + msgspec.msgpack.encode({})], "unknown message kind"),
        ([raw_header(wire.CALL, {"actor": "a", "method": "m"}, b"\0"), b"data"], "codec tag"),
        ([raw_header(wire.PING, {}), b"x", b"y"], "1 or 2 frames"),
    ],
)
def test_headers_that_are_not_their_kinds_struct_are_refused(
    frames: list[bytes], match: str
) -> None:
    with pytest.raises(trimq.RemoteProtocolError, match=match):
        wire.decode_envelope(frames)


def test_long_error_texts_are_cut_to_fit_keeping_their_end() -> None:
    text = "start " + "x" * wire.MAX_TEXT + " the end"
    cut = wire.cut(text)
    assert len(cut) == wire.MAX_TEXT
    assert cut.endswith(" the end")
    assert wire.cut("short") == "short"
    header = wire.Reply(id=1, ok=False, tb=cut, message=cut)
    assert wire.decode_envelope(wire.encode_envelope(header)).header == header


class Echo(actors.Actor):
    def echo(self, value: Any) -> Any:
        return value


async def test_a_node_survives_junk_from_a_raw_peer() -> None:
    """A libzmq DEALER sends junk envelopes, then well-formed ones with wrong
    fields; the node drops or refuses each and keeps serving a real node."""
    async with (
        actors.open_node("a", listen="tcp://127.0.0.1:*", insecure=True) as a,
        actors.open_node("b", insecure=True) as b,
    ):
        ctx = zmq.Context()
        try:
            raw = ctx.socket(zmq.DEALER)
            raw.linger = 0
            raw.routing_id = b"raw"
            raw.connect(a.endpoints[0])
            junk: list[list[bytes]] = [
                [b""],
                [b"call"],
                [b"call", b"\x80\x05junk"],
                [b"call\0" + pickle.dumps({"actor": "x", "method": "y"})],
                [b"nope\0" + msgspec.msgpack.encode({})],
                [raw_header(wire.HELLO, {"name": 7})],
                [raw_header(wire.HELLO, {"name": "a"})],  # our own name
                [raw_header(wire.SPAWN, {"id": "x"}, b"c"), b"\x00"],
                [raw_header(wire.REPLY, {"id": 99, "ok": True})],
            ]
            for frames in junk:
                raw.send_multipart(frames)
            await b.connect(a.endpoints[0])
            ref = await a.spawn(Echo)
            with trio.fail_after(10):
                assert await ref.ask("echo", [1, 2]) == [1, 2]
        finally:
            ctx.destroy(linger=0)
        assert [p.name for p in a.peers] == ["b"]
