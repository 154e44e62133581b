"""ZAP (rfc 27) request and reply messages: round trips, errors, fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trimq.zmtp._commands import encode_properties
from trimq.zmtp._zap import ZAP_ENDPOINT, ZAP_VERSION, ZapError, ZapReply, ZapRequest

FAST = settings(max_examples=300, deadline=None)

frame = st.binary(max_size=64)
credentials_for = {
    b"NULL": st.just(()),
    b"PLAIN": st.tuples(frame, frame),
    b"CURVE": st.tuples(st.binary(min_size=32, max_size=32)),
}
other_mechanism = st.binary(min_size=1, max_size=20).filter(lambda m: m not in credentials_for)


@st.composite
def requests(draw: st.DrawFn) -> ZapRequest:
    mechanism = draw(st.sampled_from([*credentials_for, b"GSSAPI"]) | other_mechanism)
    credentials = draw(credentials_for.get(mechanism, st.lists(frame, max_size=3).map(tuple)))
    return ZapRequest(
        request_id=draw(frame),
        domain=draw(frame),
        address=draw(frame),
        routing_id=draw(frame),
        mechanism=mechanism,
        credentials=credentials,
    )


property_name = st.text(min_size=1, max_size=40).filter(lambda n: len(n.encode()) <= 255)
replies = st.builds(
    ZapReply,
    request_id=frame,
    status_code=st.sampled_from([b"200", b"300", b"400", b"500"]),
    status_text=frame,
    user_id=frame,
    metadata=st.dictionaries(property_name, st.binary(max_size=100), max_size=4),
)


def plain_request(**changes: bytes) -> list[bytes]:
    fields = {
        "version": ZAP_VERSION,
        "request_id": b"1",
        "domain": b"global",
        "address": b"127.0.0.1",
        "routing_id": b"",
        "mechanism": b"PLAIN",
    }
    fields.update(changes)
    return [*fields.values(), b"admin", b"secret"]


def reply_frames(**changes: bytes) -> list[bytes]:
    fields = {
        "version": ZAP_VERSION,
        "request_id": b"1",
        "status_code": b"200",
        "status_text": b"OK",
        "user_id": b"admin",
        "metadata": b"",
    }
    fields.update(changes)
    return list(fields.values())


def test_endpoint_is_libzmqs() -> None:
    assert ZAP_ENDPOINT == "inproc://zeromq.zap.01"


@FAST
@given(requests())
def test_request_round_trips(request: ZapRequest) -> None:
    frames = request.encode()
    assert frames[0] == b"1.0"
    assert len(frames) == 6 + len(request.credentials)
    assert ZapRequest.decode(frames) == request


@FAST
@given(replies)
def test_reply_round_trips(reply: ZapReply) -> None:
    frames = reply.encode()
    assert len(frames) == 6
    decoded = ZapReply.decode(frames)
    assert decoded == reply
    assert decoded.accepted == (reply.status_code == b"200")


def test_request_decodes_plain_fields() -> None:
    request = ZapRequest.decode(plain_request())
    assert request == ZapRequest(
        b"1", b"global", b"127.0.0.1", b"", b"PLAIN", (b"admin", b"secret")
    )


def test_reply_decodes_metadata() -> None:
    metadata = encode_properties([("X-Role", b"admin"), ("Hello", b"")])
    reply = ZapReply.decode(reply_frames(metadata=metadata))
    assert reply.metadata == {"X-Role": b"admin", "Hello": b""}
    assert reply.accepted


def test_decoding_accepts_buffers() -> None:
    frames = [memoryview(f) for f in plain_request()]
    assert ZapRequest.decode(frames).credentials == (b"admin", b"secret")  # type: ignore[arg-type]


@pytest.mark.parametrize("version", [b"", b"1.1", b"2.0", b"1.0\0"])
def test_request_rejects_other_versions(version: bytes) -> None:
    with pytest.raises(ZapError, match="version"):
        ZapRequest.decode(plain_request(version=version))


@pytest.mark.parametrize("count", range(6))
def test_request_rejects_short_messages(count: int) -> None:
    with pytest.raises(ZapError, match="at least 6"):
        ZapRequest.decode(plain_request()[:count])


@pytest.mark.parametrize(
    ("mechanism", "credentials"),
    [
        (b"NULL", [b"x"]),
        (b"PLAIN", []),
        (b"PLAIN", [b"user"]),
        (b"PLAIN", [b"user", b"password", b"extra"]),
        (b"CURVE", []),
        (b"CURVE", [bytes(32), bytes(32)]),
    ],
)
def test_request_rejects_wrong_credential_counts(
    mechanism: bytes, credentials: list[bytes]
) -> None:
    frames = [*plain_request(mechanism=mechanism)[:6], *credentials]
    with pytest.raises(ZapError, match="credential frames"):
        ZapRequest.decode(frames)


@pytest.mark.parametrize("size", [0, 31, 33, 40])
def test_request_rejects_wrong_curve_key_size(size: int) -> None:
    frames = [*plain_request(mechanism=b"CURVE")[:6], bytes(size)]
    with pytest.raises(ZapError, match="expected 32"):
        ZapRequest.decode(frames)


def test_request_leaves_unknown_mechanisms_to_the_handler() -> None:
    frames = [*plain_request(mechanism=b"GSSAPI")[:6], b"principal"]
    assert ZapRequest.decode(frames).credentials == (b"principal",)


@pytest.mark.parametrize("version", [b"", b"0.9", b"1.0 "])
def test_reply_rejects_other_versions(version: bytes) -> None:
    with pytest.raises(ZapError, match="version"):
        ZapReply.decode(reply_frames(version=version))


@pytest.mark.parametrize("count", [0, 1, 5, 7])
def test_reply_rejects_wrong_frame_counts(count: int) -> None:
    frames = [*reply_frames(), b"extra"][:count]
    with pytest.raises(ZapError, match="expected 6"):
        ZapReply.decode(frames)


@pytest.mark.parametrize("status", [b"", b"201", b"OK", b"0200", b"404"])
def test_reply_rejects_unknown_status(status: bytes) -> None:
    with pytest.raises(ZapError, match="status"):
        ZapReply.decode(reply_frames(status_code=status))


@pytest.mark.parametrize(
    "metadata",
    [
        b"\x05X-Rol",  # name runs past the end
        b"\x06X-Role\x00\x00\x00\x09admin",  # value shorter than its length
        b"\x06X-Role\x00\x00",  # truncated length
        b"\x02\xff\xfe\x00\x00\x00\x00",  # name not UTF-8
    ],
)
def test_reply_rejects_malformed_metadata(metadata: bytes) -> None:
    with pytest.raises(ZapError, match="metadata is malformed"):
        ZapReply.decode(reply_frames(metadata=metadata))


arbitrary_frames = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from([ZAP_VERSION, b"NULL", b"PLAIN", b"CURVE", b"200", b"400", bytes(32)]),
    ),
    max_size=10,
)


@FAST
@given(arbitrary_frames)
def test_request_decoding_raises_only_zap_error(frames: list[bytes]) -> None:
    try:
        request = ZapRequest.decode(frames)
    except ZapError:
        return
    assert request.encode() == frames


@FAST
@given(arbitrary_frames)
def test_reply_decoding_raises_only_zap_error(frames: list[bytes]) -> None:
    try:
        reply = ZapReply.decode(frames)
    except ZapError:
        return
    assert reply.request_id == frames[1]
    assert reply.status_code in (b"200", b"300", b"400", b"500")
