"""trimq.zmtp stays pure: no trio, and a stable public surface."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import attrs
import pytest

import trimq.zmtp

_SCRIPT = textwrap.dedent(
    """
    import sys
    import types

    sys.modules["trio"] = None  # any "import trio" now raises ImportError
    # A stub parent package, so trimq/__init__.py (which imports trio) never runs.
    package = types.ModuleType("trimq")
    package.__path__ = [sys.argv[1]]
    sys.modules["trimq"] = package

    from trimq.zmtp import SocketType, ZmtpConnection

    a = ZmtpConnection(SocketType.DEALER)
    b = ZmtpConnection(SocketType.ROUTER)
    b.receive_data(a.data_to_send())
    a.receive_data(b.data_to_send())
    b.receive_data(a.data_to_send())
    assert a.handshake_complete and b.handshake_complete
    wire = b"".join(a.encode_messages([[b"hello", b"world"]]))
    assert b.receive_data(wire) == [[b"hello", b"world"]]

    assert sys.modules["trio"] is None
    leaked = [m for m in sys.modules if m.startswith("trio.") or m.startswith("trio_")]
    assert not leaked, leaked
    print("codec ok without trio")
    """
)


def test_zmtp_never_imports_trio() -> None:
    spec = importlib.util.find_spec("trimq")
    assert spec is not None
    assert spec.submodule_search_locations
    package_dir = next(iter(spec.submodule_search_locations))
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, package_dir],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "codec ok without trio"


BRIEF_API = [
    "ZmtpConnection",
    "SocketType",
    "peer_allowed",
    "HandshakeComplete",
    "Ping",
    "Pong",
    "Subscribe",
    "Cancel",
    "Event",
    "Frames",
    "Mechanism",
    "NullMechanism",
    "encode_greeting",
    "GREETING_SIZE",
]


@pytest.mark.parametrize("name", BRIEF_API)
def test_public_names(name: str) -> None:
    assert name in trimq.zmtp.__all__
    assert getattr(trimq.zmtp, name) is not None


def test_all_resolves() -> None:
    for name in trimq.zmtp.__all__:
        assert hasattr(trimq.zmtp, name), name


@pytest.mark.parametrize(
    "cls",
    [
        trimq.zmtp.HandshakeComplete,
        trimq.zmtp.Ping,
        trimq.zmtp.Pong,
        trimq.zmtp.Subscribe,
        trimq.zmtp.Cancel,
        trimq.zmtp.HandshakeStep,
    ],
)
def test_events_are_frozen(cls: type) -> None:
    assert attrs.has(cls)
    instance = cls(*[None] * len(attrs.fields(cls)))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        instance.__setattr__(attrs.fields(cls)[0].name, 1)
