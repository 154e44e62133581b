"""Choosing each connection's security mechanism from its socket's options."""

from __future__ import annotations

import trio

from .._options import SocketOptions
from ..zmtp import (
    CurveClientMechanism,
    CurveServerKeys,
    CurveServerMechanism,
    Mechanism,
    NullMechanism,
    PlainClientMechanism,
    PlainServerMechanism,
)

__all__ = ["Security"]


class Security:
    """Makes the mechanism of each new connection of one socket.

    A CURVE server's cookie keys are shared by all the socket's connections
    (that is what keeps the server stateless until INITIATE), so they live
    here, and are made anew if the socket's key pair changes.
    """

    def __init__(self) -> None:
        self._curve_keys: CurveServerKeys | None = None

    def new_mechanism(self, options: SocketOptions) -> Mechanism:
        """A fresh mechanism for one connection.

        Raises:
            ValueError: The options are inconsistent (see ``SocketOptions.security``).
        """
        kind = options.security()
        if kind == "CURVE":
            assert options.curve_secretkey is not None
            if options.curve_server:
                return CurveServerMechanism(self._server_keys(options))
            assert options.curve_serverkey is not None
            return CurveClientMechanism(
                options.curve_publickey, options.curve_secretkey, options.curve_serverkey
            )
        if kind == "PLAIN":
            if options.plain_server:
                return PlainServerMechanism()
            assert options.plain_username is not None
            assert options.plain_password is not None
            return PlainClientMechanism(options.plain_username, options.plain_password)
        return NullMechanism(authenticate=bool(options.zap_domain))

    def _server_keys(self, options: SocketOptions) -> CurveServerKeys:
        assert options.curve_secretkey is not None
        keys = self._curve_keys
        if (
            keys is None
            or keys.secret != options.curve_secretkey
            or options.curve_publickey not in (None, keys.public)
        ):
            keys = self._curve_keys = CurveServerKeys(
                options.curve_publickey, options.curve_secretkey
            )
        keys.tick(trio.current_time())
        return keys
