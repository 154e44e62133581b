"""Socket options whose effect crosses the wire, checked against libzmq."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import trio

from ._peers import Endpoints, Peer, PeerFactory

SIDES = [
    pytest.param("trimq", "pyzmq", id="trimq-REQ->pyzmq-ROUTER"),
    pytest.param("pyzmq", "trimq", id="pyzmq-REQ->trimq-ROUTER"),
]


async def bound_and_connected(
    binder: Peer, connectors: Sequence[Peer], endpoints: Endpoints
) -> None:
    endpoint = await binder.bind(endpoints.bind_address("tcp"))
    for peer in connectors:
        await peer.connect(endpoint)
        await peer.wait_handshake()


@pytest.mark.interop
@pytest.mark.parametrize(("req_kind", "router_kind"), SIDES)
async def test_req_correlate_and_relaxed(
    peers: PeerFactory, endpoints: Endpoints, req_kind: str, router_kind: str
) -> None:
    """A correlating REQ prefixes a 4-byte request id and ignores replies to older requests."""
    with trio.fail_after(5):
        router = peers.make(router_kind, "ROUTER")
        req = peers.make(req_kind, "REQ", req_correlate=True, req_relaxed=True)
        await bound_and_connected(router, [req], endpoints)
        await req.send_multipart([b"first"])
        peer_id, first_id, delimiter, body = await router.recv_multipart()
        assert (len(first_id), delimiter, body) == (4, b"", b"first")
        await req.send_multipart([b"second"])  # relaxed: no reply to "first" needed
        peer_id2, second_id, delimiter, body = await router.recv_multipart()
        assert (peer_id2, delimiter, body) == (peer_id, b"", b"second")
        assert len(second_id) == 4
        assert second_id != first_id
        await router.send_multipart([peer_id, first_id, b"", b"stale reply"])
        await router.send_multipart([peer_id, second_id, b"", b"fresh reply"])
        assert await req.recv_multipart() == [b"fresh reply"]


@pytest.mark.interop
@pytest.mark.parametrize(
    ("xpub_kind", "sub_kind"),
    [
        pytest.param("trimq", "pyzmq", id="trimq-XPUB->pyzmq-SUB"),
        pytest.param("pyzmq", "trimq", id="pyzmq-XPUB->trimq-SUB"),
    ],
)
async def test_xpub_welcome_message(
    peers: PeerFactory, endpoints: Endpoints, xpub_kind: str, sub_kind: str
) -> None:
    with trio.fail_after(5):
        xpub = peers.make(xpub_kind, "XPUB", xpub_welcome_msg=b"welcome")
        sub = peers.make(sub_kind, "SUB")
        sub.subscribe(b"welcome")
        await bound_and_connected(xpub, [sub], endpoints)
        # (Receiving also makes an idle libzmq XPUB attach the new pipe and send the welcome.)
        while (got := await xpub.recv_within(0.02)) is None:
            sub.nudge()
        assert got == [b"\x01welcome"]
        assert await sub.recv_multipart() == [b"welcome"]


@pytest.mark.interop
@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
async def test_trimq_xpub_reports_libzmq_subscribers(
    peers: PeerFactory, endpoints: Endpoints, verbose: bool
) -> None:
    """First subscribe / last cancel per topic, every subscribe with xpub_verbose,
    and a departing subscriber's topics are cancelled."""
    with trio.fail_after(5):
        xpub = peers.trimq("XPUB", xpub_verbose=verbose)
        subs = [peers.pyzmq("SUB"), peers.pyzmq("SUB")]
        await bound_and_connected(xpub, subs, endpoints)
        for sub in subs:
            sub.subscribe(b"t")
        for sub in subs:
            sub.subscribe(b"sync-" + bytes([subs.index(sub)]))
        # Each SUB sends "t" before its sync topic, so once both sync topics are
        # reported every "t" subscription has been seen too.
        reported: list[bytes] = []
        while len([m for m in reported if m.startswith(b"\x01sync-")]) < 2:
            if (got := await xpub.recv_within(0.02)) is None:
                for sub in subs:
                    sub.nudge()
            else:
                reported.append(got[0])
        t_reports = [m for m in reported if m == b"\x01t"]
        assert len(t_reports) == (2 if verbose else 1), reported

        await subs[0].aclose()
        assert await xpub.recv_multipart() == [b"\x00sync-\x00"]  # and not "t"
        await subs[1].aclose()
        # Only the last subscriber leaving cancels "t" (each sync topic was only one's).
        cancels = {(await xpub.recv_multipart())[0] for _ in range(2)}
        assert cancels == {b"\x00sync-\x01", b"\x00t"}


@pytest.mark.interop
async def test_libzmq_xpub_cancels_when_trimq_sub_leaves(
    peers: PeerFactory, endpoints: Endpoints
) -> None:
    with trio.fail_after(5):
        xpub = peers.pyzmq("XPUB")
        sub = peers.trimq("SUB")
        sub.subscribe(b"t")
        await bound_and_connected(xpub, [sub], endpoints)
        assert await xpub.recv_multipart() == [b"\x01t"]
        await sub.aclose()
        assert await xpub.recv_multipart() == [b"\x00t"]
