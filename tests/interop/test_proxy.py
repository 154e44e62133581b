"""trimq.proxy between libzmq clients and libzmq workers (the broker in the middle is trimq)."""

from __future__ import annotations

import pytest
import trio

import trimq

from ._peers import Endpoints, PeerFactory, TrimqPeer


@pytest.mark.interop
async def test_router_dealer_broker_between_libzmq_req_and_rep(
    peers: PeerFactory, endpoints: Endpoints, nursery: trio.Nursery
) -> None:
    """libzmq REQ clients -> trimq ROUTER|proxy|DEALER -> libzmq REP workers, envelopes intact."""
    with trio.fail_after(5):
        frontend = peers.trimq("ROUTER")
        backend = peers.trimq("DEALER")
        front_ep = await frontend.bind(endpoints.bind_address("tcp"))
        back_ep = await backend.bind(endpoints.bind_address("ipc"))
        nursery.start_soon(proxy_between, frontend, backend)
        workers = [peers.pyzmq("REP") for _ in range(2)]
        for worker in workers:
            await worker.connect(back_ep)
            await worker.wait_handshake()
        clients = [peers.pyzmq("REQ", routing_id=b"client-%d" % n) for n in range(3)]
        for client in clients:
            await client.connect(front_ep)
            await client.wait_handshake()

        for n, client in enumerate(clients):
            await client.send_multipart([b"job", b"%d" % n])
        served: dict[int, list[bytes]] = {0: [], 1: []}
        while sum(len(jobs) for jobs in served.values()) < len(clients):
            for n, worker in enumerate(workers):
                if (job := await worker.recv_within(0.01)) is not None:
                    assert job[0] == b"job"
                    served[n].append(job[1])
                    await worker.send_multipart([b"done", job[1]])
        assert sorted(len(jobs) for jobs in served.values()) == [1, 2]  # load-balanced
        for n, client in enumerate(clients):
            assert await client.recv_multipart() == [b"done", b"%d" % n]


@pytest.mark.interop
async def test_xsub_xpub_forwarder_between_libzmq_pub_and_sub(
    peers: PeerFactory, endpoints: Endpoints, nursery: trio.Nursery
) -> None:
    """libzmq PUB -> trimq XSUB|proxy|XPUB -> libzmq SUB: subscriptions travel upstream."""
    with trio.fail_after(5):
        xsub = peers.trimq("XSUB")
        xpub = peers.trimq("XPUB")
        pub = peers.pyzmq("PUB")
        sub = peers.pyzmq("SUB")
        await xsub.connect(await pub.bind(endpoints.bind_address("tcp")))
        await sub.connect(await xpub.bind(endpoints.bind_address("tcp")))
        await xsub.wait_handshake()
        await sub.wait_handshake()
        nursery.start_soon(proxy_between, xsub, xpub)
        sub.subscribe(b"news")
        while True:  # until the subscription has crossed both hops
            await pub.send_multipart([b"news", b"probe"])
            if await sub.recv_within(0.02) == [b"news", b"probe"]:
                break
        await pub.send_multipart([b"weather", b"rain"])
        await pub.send_multipart([b"news", b"final"])
        while (got := await sub.recv_multipart()) == [b"news", b"probe"]:
            pass
        assert got == [b"news", b"final"]


async def proxy_between(frontend: TrimqPeer, backend: TrimqPeer) -> None:
    await trimq.proxy(frontend.sock, backend.sock)
