"""REQ/REP: lock-step, envelopes through a proxy, relaxed/correlate, load balancing."""

from __future__ import annotations

import contextlib

import pytest
import trio

import trimq

from ._helpers import TIMEOUT, bind_endpoint, connect, link, settle


@pytest.mark.parametrize("transport", ["inproc", "tcp", "ipc"])
async def test_request_reply_round_trips(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            rep = ctx.socket(trimq.REP)
            bound = await rep.bind(endpoint)
            req = ctx.socket(trimq.REQ)
            await req.connect(bound)
            for i in range(3):
                await req.send_multipart([b"ping", b"%d" % i])
                assert await rep.recv_multipart() == [b"ping", b"%d" % i]
                await rep.send(b"pong %d" % i)
                assert await req.recv() == b"pong %d" % i
                assert not req.rcvmore


async def test_req_send_twice_is_a_state_error(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            rep = ctx.socket(trimq.REP)
            bound = await rep.bind(endpoint)
            req = ctx.socket(trimq.REQ)
            await connect(req, bound)
            await req.send(b"one")
            with pytest.raises(trimq.SocketStateError):
                await req.send(b"two")
            with pytest.raises(trimq.SocketStateError):
                req.send_nowait(b"two")
            # The first request is still answered normally.
            assert await rep.recv() == b"one"
            await rep.send(b"reply")
            assert await req.recv() == b"reply"


async def test_req_recv_before_send_is_a_state_error(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            rep = ctx.socket(trimq.REP)
            bound = await rep.bind(endpoint)
            req = ctx.socket(trimq.REQ)
            await connect(req, bound)
            with pytest.raises(trimq.SocketStateError):
                await req.recv()
            with pytest.raises(trimq.SocketStateError):
                req.recv_nowait()
            # REP may not reply before it has a request, nor receive twice.
            with pytest.raises(trimq.SocketStateError):
                await rep.send(b"unasked")
            await req.send(b"q")
            assert await rep.recv() == b"q"
            with pytest.raises(trimq.SocketStateError):
                await rep.recv()
            await rep.send(b"a")
            assert await req.recv() == b"a"


@pytest.mark.parametrize("correlate", [False, True], ids=["plain", "correlate"])
async def test_envelopes_survive_a_router_dealer_proxy(transport: str, correlate: bool) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            frontend = ctx.socket(trimq.ROUTER)
            front = await frontend.bind(bind_endpoint(transport))
            backend = ctx.socket(trimq.DEALER)
            back = await backend.bind(bind_endpoint(transport))
            reps = [ctx.socket(trimq.REP) for _ in range(2)]
            for rep in reps:
                await link(backend, rep, back)
            reqs = [
                ctx.socket(trimq.REQ, routing_id=b"client-%d" % i, req_correlate=correlate)
                for i in range(3)
            ]
            for req in reqs:
                await link(frontend, req, front)

            async def worker(rep: trimq.Socket, name: bytes) -> None:
                while True:
                    body = await rep.recv_multipart()
                    await rep.send_multipart([name, *body])

            async with trio.open_nursery() as nursery:
                nursery.start_soon(trimq.proxy, frontend, backend)
                for i, rep in enumerate(reps):
                    nursery.start_soon(worker, rep, b"w%d" % i)
                for rnd in range(3):
                    for i, req in enumerate(reqs):
                        await req.send_multipart([b"req", b"%d-%d" % (i, rnd)])
                    for i, req in enumerate(reqs):
                        reply = await req.recv_multipart()
                        # Each client gets the answer to its own request, envelope stripped.
                        assert reply[0] in (b"w0", b"w1")
                        assert reply[1:] == [b"req", b"%d-%d" % (i, rnd)]
                nursery.cancel_scope.cancel()


async def test_rep_sees_and_replays_the_envelope(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            rep = ctx.socket(trimq.REP)
            bound = await rep.bind(endpoint)
            dealer = ctx.socket(trimq.DEALER)
            await link(rep, dealer, bound)
            # A hand-built envelope of two hops, then the delimiter.
            await dealer.send_multipart([b"hop1", b"hop2", b"", b"body"])
            assert await rep.recv_multipart() == [b"body"]
            await rep.send(b"answer")
            assert await dealer.recv_multipart() == [b"hop1", b"hop2", b"", b"answer"]
            # A request without the delimiter is dropped by REP.
            await dealer.send_multipart([b"no-delimiter"])
            await dealer.send_multipart([b"", b"good"])
            assert await rep.recv_multipart() == [b"good"]
            assert rep.statistics().messages_dropped == 1


async def test_req_relaxed_allows_resend(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            rep = ctx.socket(trimq.REP)
            bound = await rep.bind(endpoint)
            req = ctx.socket(trimq.REQ, req_relaxed=True)
            await connect(req, bound)
            await req.send(b"lost?")
            await req.send(b"again")  # no SocketStateError
            assert await rep.recv() == b"lost?"
            await rep.send(b"r1")
            assert await rep.recv() == b"again"
            await rep.send(b"r2")
            assert await req.recv() in (b"r1", b"r2")


async def test_req_relaxed_and_correlate_discard_stale_replies(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            rep = ctx.socket(trimq.REP)
            bound = await rep.bind(endpoint)
            req = ctx.socket(trimq.REQ, req_relaxed=True, req_correlate=True)
            await connect(req, bound)
            await req.send(b"first")
            assert await rep.recv() == b"first"
            await req.send(b"second")  # abandons "first"
            await rep.send(b"reply to first")  # arrives after "second" was sent
            assert await rep.recv() == b"second"
            await rep.send(b"reply to second")
            assert await req.recv() == b"reply to second"
            await settle()
            with pytest.raises(trimq.SocketStateError):
                req.recv_nowait()


async def test_req_correlate_prefixes_a_request_id(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            router = ctx.socket(trimq.ROUTER)
            bound = await router.bind(endpoint)
            req = ctx.socket(trimq.REQ, req_correlate=True, routing_id=b"req")
            await link(router, req, bound)
            await req.send(b"hello")
            ident, request_id, delim, body = await router.recv_multipart()
            assert (ident, delim, body) == (b"req", b"", b"hello")
            assert len(request_id) == 4
            # A reply carrying another id is dropped; the matching one is accepted.
            wrong = ((int.from_bytes(request_id, "big") + 1) & 0xFFFFFFFF).to_bytes(4, "big")
            await router.send_multipart([b"req", wrong, b"", b"stale"])
            await router.send_multipart([b"req", request_id, b"", b"fresh"])
            assert await req.recv() == b"fresh"
            # The next request uses a new id.
            await req.send(b"again")
            _, request_id2, _, _ = await router.recv_multipart()
            assert request_id2 != request_id


async def test_req_load_balances_across_reps(transport: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            reps = [ctx.socket(trimq.REP) for _ in range(3)]
            req = ctx.socket(trimq.REQ)
            for rep in reps:
                await link(rep, req, await rep.bind(bind_endpoint(transport)))
            served: list[int] = []
            for i in range(6):
                await req.send(b"%d" % i)
                with trio.fail_after(TIMEOUT / 2):
                    # Exactly one REP gets the request.
                    while True:
                        await settle()
                        ready = []
                        for n, rep in enumerate(reps):
                            with contextlib.suppress(trio.WouldBlock):
                                ready.append((n, rep.recv_nowait()))
                        if ready:
                            break
                assert len(ready) == 1
                n, body = ready[0]
                assert body == b"%d" % i
                served.append(n)
                await reps[n].send(b"ok")
                assert await req.recv() == b"ok"
            # Round robin: every REP in turn, twice.
            assert served[:3] == served[3:]
            assert sorted(served[:3]) == [0, 1, 2]


async def test_req_accepts_replies_only_from_the_peer_it_asked(transport: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            routers = [ctx.socket(trimq.ROUTER) for _ in range(2)]
            req = ctx.socket(trimq.REQ, routing_id=b"req")
            for router in routers:
                await link(router, req, await router.bind(bind_endpoint(transport)))
            await req.send(b"question")
            await settle()
            got = []
            for router in routers:
                with contextlib.suppress(trio.WouldBlock):
                    got.append((router, router.recv_multipart_nowait()))
            assert len(got) == 1
            chosen, msg = got[0]
            assert msg == [b"req", b"", b"question"]
            other = next(r for r in routers if r is not chosen)
            await other.send_multipart([b"req", b"", b"impostor"])
            await settle()
            await chosen.send_multipart([b"req", b"no delimiter"])
            await settle()
            await chosen.send_multipart([b"req", b"", b"genuine"])
            assert await req.recv_multipart() == [b"genuine"]
            assert req.statistics().messages_dropped >= 2


async def test_rep_answers_each_requester(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            rep = ctx.socket(trimq.REP)
            bound = await rep.bind(endpoint)
            reqs = [ctx.socket(trimq.REQ) for _ in range(3)]
            for i, req in enumerate(reqs):
                await link(rep, req, bound)
                await req.send(b"%d" % i)
            for _ in range(3):
                body = await rep.recv()
                await rep.send(b"re:" + body)
            for i, req in enumerate(reqs):
                assert await req.recv() == b"re:%d" % i


async def test_req_sees_plain_envelope_at_router(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            router = ctx.socket(trimq.ROUTER)
            bound = await router.bind(endpoint)
            req = ctx.socket(trimq.REQ, routing_id=b"me")
            await link(router, req, bound)
            await req.send_multipart([b"a", b"b"])
            assert await router.recv_multipart() == [b"me", b"", b"a", b"b"]
            await router.send_multipart([b"me", b"", b"c", b"d"])
            assert await req.recv_multipart() == [b"c", b"d"]


async def test_req_relaxed_resends_to_another_peer(transport: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            reps = [ctx.socket(trimq.REP) for _ in range(2)]
            req = ctx.socket(trimq.REQ, req_relaxed=True)
            for rep in reps:
                await link(rep, req, await rep.bind(bind_endpoint(transport)))
            await req.send(b"try 1")  # goes to one REP, which never answers
            await req.send(b"try 2")  # the next one in turn
            await settle()
            got = {}
            for n, rep in enumerate(reps):
                got[n] = rep.recv_nowait()
            assert sorted(got.values()) == [b"try 1", b"try 2"]
            second = next(n for n, body in got.items() if body == b"try 2")
            await reps[second].send(b"answer 2")
            assert await req.recv() == b"answer 2"


async def test_cancelled_req_send_leaves_socket_usable() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            req = ctx.socket(trimq.REQ)
            bound = await req.bind(bind_endpoint("inproc"))  # no peer: send blocks
            with trio.move_on_after(0.01):
                await req.send(b"abandoned")
            rep = ctx.socket(trimq.REP)
            await rep.connect(bound)
            await settle()
            with pytest.raises(trio.WouldBlock):
                rep.recv_nowait()  # the cancelled request was never sent
            await req.send(b"real")  # not a SocketStateError
            assert await rep.recv() == b"real"


async def test_cancelled_req_recv_keeps_waiting_for_the_reply(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            rep = ctx.socket(trimq.REP)
            bound = await rep.bind(endpoint)
            req = ctx.socket(trimq.REQ)
            await link(rep, req, bound)
            await req.send(b"q")
            with trio.move_on_after(0.01):
                await req.recv()
            assert await rep.recv() == b"q"
            await rep.send(b"late reply")
            assert await req.recv() == b"late reply"


async def test_rep_survives_a_vanished_requester(transport: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            rep = ctx.socket(trimq.REP)
            bound = await rep.bind(bind_endpoint(transport))
            gone = ctx.socket(trimq.REQ)
            await link(rep, gone, bound)
            await gone.send(b"from the departed")
            assert await rep.recv() == b"from the departed"
            async with rep.monitor() as events:
                await gone.aclose(linger=0)
                if transport != "inproc":
                    await events.wait_for(trimq.EventType.DISCONNECTED)
            await rep.send(b"nobody listens")  # dropped, no error, no block
            stay = ctx.socket(trimq.REQ)
            await link(rep, stay, bound)
            await stay.send(b"next")
            assert await rep.recv() == b"next"
            await rep.send(b"ok")
            assert await stay.recv() == b"ok"


async def test_request_body_may_start_with_an_empty_frame(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            rep = ctx.socket(trimq.REP)
            bound = await rep.bind(endpoint)
            req = ctx.socket(trimq.REQ)
            await req.connect(bound)
            await req.send_multipart([b"", b"after-empty"])
            assert await rep.recv_multipart() == [b"", b"after-empty"]
            await rep.send_multipart([b"", b"reply"])
            assert await req.recv_multipart() == [b"", b"reply"]
