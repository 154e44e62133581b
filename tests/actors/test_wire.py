"""The node-to-node envelope parser: round trips, and nothing but ProtocolError from junk."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
import trio
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

import trimq
from trimq import actors
from trimq.actors import _wire as wire

values = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
keys = st.text(max_size=10).filter(lambda key: key != wire.TAG)
headers = st.dictionaries(keys, values | st.lists(values, max_size=3), max_size=5)
payloads = st.none() | st.tuples(st.sampled_from([b"b", b"p", b"c"]), st.binary())


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(wire.KINDS)), headers, payloads)
def test_envelopes_round_trip(kind: bytes, header: dict[str, Any], payload: Any) -> None:
    env = wire.decode_envelope(wire.encode_envelope(kind, header, payload))
    assert (env.kind, env.header) == (kind, header)
    assert (env.tag, env.data) == (payload if payload is not None else (None, b""))


@settings(max_examples=500, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=6))
def test_random_frames_give_an_envelope_or_a_protocol_error(frames: list[bytes]) -> None:
    try:
        env = wire.decode_envelope(frames)
    except trimq.RemoteProtocolError:
        return
    assert env.kind in wire.KINDS
    assert isinstance(env.header, dict)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_headers_give_an_envelope_or_a_protocol_error(draw: st.DataObject) -> None:
    frames = wire.encode_envelope(wire.CALL, {"id": 3, "actor": "a", "method": "m"}, (b"p", b"x"))
    raw = bytearray(frames[0])
    for _ in range(draw.draw(st.integers(1, 4))):
        raw[draw.draw(st.integers(0, len(raw) - 1))] = draw.draw(st.integers(0, 255))
    try:
        env = wire.decode_envelope([bytes(raw), frames[1]])
    except trimq.RemoteProtocolError:
        return
    assert all(isinstance(key, str) for key in env.header)


def test_headers_that_name_code_or_are_too_big_are_refused() -> None:
    with pytest.raises(trimq.RemoteProtocolError, match="bad header"):
        wire.decode_envelope([wire.CALL + b"\0" + pickle.dumps(print)])
    with pytest.raises(trimq.RemoteProtocolError, match="at most"):
        wire.decode_envelope([wire.CALL + b"\0" + b"x" * (wire.MAX_HEADER + 1)])
    with pytest.raises(trimq.RemoteProtocolError, match="str keys"):
        wire.decode_envelope([wire.CALL + b"\0" + pickle.dumps({1: 2})])
    with pytest.raises(trimq.RemoteProtocolError, match="unknown message kind"):
        wire.decode_envelope([b"exec\0" + pickle.dumps({})])
    with pytest.raises(trimq.RemoteProtocolError, match="one-letter tag"):
        wire.decode_envelope([wire.CALL + b"\0" + pickle.dumps({}), b"data"])
    with pytest.raises(trimq.RemoteProtocolError, match="without a payload"):
        wire.decode_envelope([wire.CALL + b"\0" + pickle.dumps({wire.TAG: "p"})])


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
                [b"nope", pickle.dumps({})],
                [b"hello", pickle.dumps({"name": 7})],
                [b"hello", pickle.dumps({"name": "a"})],  # our own name
                [b"spawn", pickle.dumps({"id": "x"}), b"c", b"\x00"],
                [b"reply", pickle.dumps({"id": 99, "ok": True})],
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
