"""Guard the public API surface: ``trimq.__all__`` changes only on purpose."""

from __future__ import annotations

import inspect

import trio

import trimq

EXPECTED = {
    # socket types
    "PAIR",
    "PUB",
    "SUB",
    "REQ",
    "REP",
    "DEALER",
    "ROUTER",
    "PULL",
    "PUSH",
    "XPUB",
    "XSUB",
    "SocketType",
    # core classes
    "Context",
    "Socket",
    "SocketOptions",
    "SocketStatistics",
    "Monitor",
    "MonitorEvent",
    "EventType",
    "proxy",
    # security
    "Peer",
    "Message",
    "curve_keypair",
    "curve_public",
    "z85_encode",
    "z85_decode",
    # errors
    "AuthenticationError",
    "TrimqError",
    "ProtocolError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "HandshakeError",
    "MessageTooLargeError",
    "SocketStateError",
    "NotSupportedError",
    "HostUnreachableError",
    "InvalidEndpointError",
    "UnsupportedTransportError",
    "__version__",
}


def test_all_is_exactly_the_public_api() -> None:
    assert set(trimq.__all__) == EXPECTED
    assert len(trimq.__all__) == len(set(trimq.__all__))


def test_every_exported_name_exists() -> None:
    for name in trimq.__all__:
        assert hasattr(trimq, name), name


def test_no_undeclared_public_names() -> None:
    public = {
        name
        for name, value in vars(trimq).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public <= set(trimq.__all__)


def test_socket_type_constants_match_libzmq_numbers() -> None:
    numbers = {
        "PAIR": 0,
        "PUB": 1,
        "SUB": 2,
        "REQ": 3,
        "REP": 4,
        "DEALER": 5,
        "ROUTER": 6,
        "PULL": 7,
        "PUSH": 8,
        "XPUB": 9,
        "XSUB": 10,
    }
    for name, number in numbers.items():
        constant = getattr(trimq, name)
        assert constant is trimq.SocketType[name]
        assert constant == number


def test_exception_hierarchy() -> None:
    assert issubclass(trimq.TrimqError, Exception)
    for name in (
        "ProtocolError",
        "SocketStateError",
        "NotSupportedError",
        "HostUnreachableError",
        "InvalidEndpointError",
    ):
        assert issubclass(getattr(trimq, name), trimq.TrimqError), name
    assert issubclass(trimq.LocalProtocolError, trimq.ProtocolError)
    assert issubclass(trimq.RemoteProtocolError, trimq.ProtocolError)
    assert issubclass(trimq.HandshakeError, trimq.RemoteProtocolError)
    assert issubclass(trimq.MessageTooLargeError, trimq.RemoteProtocolError)
    assert issubclass(trimq.NotSupportedError, TypeError)
    assert issubclass(trimq.InvalidEndpointError, ValueError)
    assert issubclass(trimq.UnsupportedTransportError, trimq.InvalidEndpointError)
    # trio's own exceptions are used where they fit, not re-exported clones.
    assert not hasattr(trimq, "WouldBlock")
    assert not hasattr(trimq, "ClosedResourceError")
    assert trio.WouldBlock is not None


def test_version_is_a_string() -> None:
    assert isinstance(trimq.__version__, str)
    assert trimq.__version__.count(".") >= 1
