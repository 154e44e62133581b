"""CURVE security: an encrypted, authenticated server that only lets known clients in.

Three key pairs, as ``trimq keygen NAME`` would write them::

    server   the server's pair; clients must know its public key in advance
    alice    a client whose public certificate is in the server's allow-list directory
    mallory  a client nobody added to the list

- The server is a REP socket with ``curve_server=True`` and its secret key.
  Every byte on the wire is encrypted, and the handshake proves each side holds
  the secret half of its public key.
- A ``trimq.auth.Authenticator`` running in the same Context decides who gets
  in: here, the clients whose ``.key`` files are in the ``allowed`` directory.
  Without an authenticator a CURVE server accepts any client that knows its key.
- ``recv_message()`` tells the server who sent each request: the client's
  proven public key and the user id the authenticator vouched for.
- Mallory's handshake is refused: her queued request is never delivered, and
  both sides see ``HANDSHAKE_FAILED_AUTH`` on their monitors.

Run it with ``python examples/secure.py``. Expected output (``...`` stands for
text that varies)::

    keys: wrote server, alice and mallory certificates; allowed: alice
    server: listening on tcp://127.0.0.1:... with CURVE
    server: b'hello' from alice's key ...
    alice: reply b'HELLO'
    mallory: refused by the server (ZAP status 400)
    server: refused a client: authentication refused the peer (400: unknown CURVE key)
    server: done
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import trio

import trimq
import trimq.auth


def make_keys(base: Path) -> dict[str, tuple[bytes, bytes]]:
    """Write each party's certificate pair; return their (public, secret) keys."""
    keys = {}
    for name in ("server", "alice", "mallory"):
        _, secret_file = trimq.auth.create_certificates(base / name, name)
        public, secret = trimq.auth.load_certificate(secret_file)
        assert secret is not None
        keys[name] = (public, secret)
    # The server trusts whoever has a public certificate in this directory.
    (base / "allowed").mkdir()
    shutil.copy(base / "alice" / "alice.key", base / "allowed")
    print("keys: wrote server, alice and mallory certificates; allowed: alice")
    return keys


def client_options(keys: dict[str, tuple[bytes, bytes]], name: str) -> dict[str, bytes]:
    public, secret = keys[name]
    return {
        "curve_serverkey": keys["server"][0],
        "curve_publickey": public,
        "curve_secretkey": secret,
    }


async def main() -> None:
    # Refusing mallory is expected here; we print it ourselves below.
    logging.getLogger("trimq").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp, trio.fail_after(10):
        keys = make_keys(Path(tmp))
        server_public, server_secret = keys["server"]
        async with trimq.Context() as ctx, trimq.auth.Authenticator(ctx) as auth:
            auth.configure_curve(location=Path(tmp) / "allowed")
            server = ctx.socket(
                trimq.REP,
                curve_server=True,
                curve_secretkey=server_secret,
                curve_publickey=server_public,
            )
            server_events = server.monitor()
            endpoint = await server.bind("tcp://127.0.0.1:*")
            print(f"server: listening on {endpoint} with CURVE")

            alice = ctx.socket(trimq.REQ, **client_options(keys, "alice"))
            await alice.connect(endpoint)
            await alice.send(b"hello")
            request = await server.recv_message()
            assert request.peer is not None
            who = "alice's" if request.peer.z85_public_key == keys["alice"][0] else "unknown"
            print(f"server: {request.frames[0]!r} from {who} key {request.peer.user_id.decode()}")
            await server.send(request.frames[0].upper())
            print(f"alice: reply {await alice.recv()!r}")

            mallory = ctx.socket(trimq.REQ, **client_options(keys, "mallory"))
            mallory_events = mallory.monitor()
            await mallory.connect(endpoint)
            await mallory.send(b"let me in")  # queued; never delivered
            refused = await mallory_events.wait_for(trimq.EventType.HANDSHAKE_FAILED_AUTH)
            print(f"mallory: refused by the server (ZAP status {refused.value})")
            refusal = await server_events.wait_for(trimq.EventType.HANDSHAKE_FAILED_AUTH)
            print(f"server: refused a client: {refusal.reason}")
            for sock in (mallory, alice, server):
                await sock.aclose(linger=0)
            print("server: done")


if __name__ == "__main__":
    trio.run(main)
