"""Authentication: a ZAP handler and CURVE certificate files.

ZAP (the ZeroMQ Authentication Protocol, rfc 27) lets a socket ask a handler,
bound at ``inproc://zeromq.zap.01`` in the same Context, whether to accept a
peer. :class:`Authenticator` is that handler, driven by an address, PLAIN
password and CURVE key policy.

As in libzmq, without any ZAP handler in the Context a CURVE server accepts
every client that completes the handshake, a PLAIN server refuses every
client, and NULL is not authenticated at all. Example::

    async with trimq.Context() as ctx:
        async with trimq.auth.Authenticator(ctx) as auth:
            auth.allow("127.0.0.1")
            auth.configure_curve(location="public_keys/")
            ...
"""

from ._authenticator import CURVE_ALLOW_ANY as CURVE_ALLOW_ANY
from ._authenticator import Authenticator as Authenticator
from ._authenticator import AuthenticatorStatistics as AuthenticatorStatistics
from ._certs import create_certificates as create_certificates
from ._certs import load_certificate as load_certificate
from ._certs import load_certificates as load_certificates

__all__ = [
    "CURVE_ALLOW_ANY",
    "Authenticator",
    "AuthenticatorStatistics",
    "create_certificates",
    "load_certificate",
    "load_certificates",
]
