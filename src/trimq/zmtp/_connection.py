"""The sans-I/O ZMTP 3.1 connection: bytes in, events out; messages in, bytes out.

Invariants the parsing code relies on:

* The peer's greeting accumulates in ``_greeting`` (at most 64 bytes). After
  it, received bytes not yet parsed live either in ``_tail`` (a partial frame
  header, at most 8 bytes) or, once a header has been read but the body has
  not fully arrived, in ``_big_chunks`` (views of the received ``bytes``
  objects, never copies); never both. Joining the chunks when the body is
  complete copies each body byte exactly once, however many reads it took.
* ``_part`` holds the frames of the data message being received and
  ``_part_size`` their total size, already including a frame that is waiting
  in ``_big_chunks`` (sizes are checked against ``maxmsgsize`` at the header).
* ``_fast`` is true exactly when the handshake is complete and the mechanism
  does not transform frames (NULL): then the tight loop in ``_parse_fast``
  handles everything but commands, and ``_encode_fast`` all sending.
* After a :class:`RemoteProtocolError`, ``_error`` is set and the connection
  never parses again.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from .._errors import (
    AuthenticationError,
    HandshakeError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
)
from ._commands import (
    CANCEL,
    ERROR,
    PING,
    PONG,
    READY,
    SUBSCRIBE,
    check_peer_properties,
    decode_error,
    decode_ping,
    encode_command,
    encode_error,
    encode_ping,
    split_command,
    validate_metadata,
)
from ._encoder import BytesLike, Chunks, encode_plain, encode_wrapped
from ._events import AuthRequest, Cancel, Event, Frames, HandshakeComplete, Pong, Subscribe
from ._frames import (
    FLAG_COMMAND,
    FLAG_LONG,
    FLAG_MORE,
    MAX_COMMAND_SIZE,
    MAX_FRAME_SIZE,
    command_too_large,
    encode_command_frame,
    frame_header,
    impossible_frame,
    message_too_large,
)
from ._greeting import GREETING_SIZE, check_greeting, encode_greeting
from ._mechanisms import HandshakeStep, Mechanism, NullMechanism
from ._sockettype import SocketType

__all__ = ["ZmtpConnection"]

_GREETING: Final = 0
_HANDSHAKE: Final = 1
_READY: Final = 2

_unpack_size = struct.Struct(">Q").unpack_from

# libzmq sends the Identity property only from these types (it is what a
# ROUTER peer uses as the routing id).
_SENDS_IDENTITY: Final = frozenset({SocketType.REQ, SocketType.DEALER, SocketType.ROUTER})
_RECEIVES_SUBSCRIPTIONS: Final = frozenset({SocketType.PUB, SocketType.XPUB})
_SENDS_SUBSCRIPTIONS: Final = frozenset({SocketType.SUB, SocketType.XSUB})


class ZmtpConnection:
    """One ZMTP 3.1 connection, without any I/O.

    Feed received bytes to :meth:`receive_data`, send whatever
    :meth:`data_to_send` and :meth:`encode_messages` return. Our greeting is
    queued at construction, so call :meth:`data_to_send` right after
    connecting. Not thread-safe; never blocks.

    Args:
        socket_type: Our socket type; sent as ``Socket-Type`` and checked against the
            peer's.
        identity: Our routing id, sent as ``Identity`` only from REQ, DEALER and ROUTER
            (like libzmq); at most 255 bytes.
        mechanism: Security mechanism; a fresh :class:`NullMechanism` if ``None``.
            An instance serves only one connection.
        maxmsgsize: Largest incoming data message (all frames together) in bytes;
            negative means unlimited. Enforced from frame headers, before buffering.
        metadata: Extra READY properties; names must start with ``"X-"``.

    Raises:
        LocalProtocolError: ``identity`` or ``metadata`` is invalid.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        socket_type: SocketType,
        *,
        identity: bytes = b"",
        mechanism: Mechanism | None = None,
        maxmsgsize: int = -1,
        metadata: Mapping[str, bytes] | None = None,
    ) -> None:
        self._socket_type = SocketType(socket_type)
        if len(identity) > 255:
            raise LocalProtocolError(f"identity is {len(identity)} bytes; ZMTP allows 0-255")
        self._identity = bytes(identity)
        self._mechanism = NullMechanism() if mechanism is None else mechanism
        self._maxmsgsize = maxmsgsize if maxmsgsize >= 0 else -1
        properties = [("Socket-Type", self._socket_type.zmtp_name)]
        if self._socket_type in _SENDS_IDENTITY:
            properties.append(("Identity", self._identity))
        properties.extend(validate_metadata(metadata))
        self._properties = properties

        self._state = _GREETING
        self._fast = False
        self._out = bytearray(
            encode_greeting(
                self._mechanism.name,
                self._mechanism.as_server,
                minor=1,
                identity_size=len(self._identity),
            )
        )
        self._greeting = bytearray()
        # The context of the PONG we owe; a newer PING replaces it, as in libzmq,
        # so a peer that floods PINGs and never reads cannot grow our output.
        self._pong_due: bytes | None = None
        self._peer_minor: int | None = None
        self._peer_socket_type: SocketType | None = None
        self._peer_identity = b""
        self._peer_metadata: dict[str, bytes] = {}
        self._sub_commands = False  # send SUBSCRIBE/CANCEL as commands?
        self._accepts_subscriptions = self._socket_type in _RECEIVES_SUBSCRIPTIONS

        self._tail = b""
        self._part: Frames = []
        self._part_size = 0
        self._big_size = -1  # body size of the frame in big-frame mode, -1 if none
        self._big_flags = 0
        self._big_have = 0
        self._big_chunks: list[BytesLike] = []

        self._auth_pending = False
        self._user_id = b""
        self._zap_metadata: dict[str, bytes] = {}

        self._eof = False
        self._error: ProtocolError | None = None
        self._events_before_error: list[Event] = []

    # ------------------------------------------------------------------ state

    @property
    def socket_type(self) -> SocketType:
        """Our socket type."""
        return self._socket_type

    @property
    def mechanism(self) -> Mechanism:
        """The security mechanism in use."""
        return self._mechanism

    @property
    def handshake_complete(self) -> bool:
        """True once the peer's handshake was accepted (data may flow)."""
        return self._state == _READY

    @property
    def waiting_for(self) -> str:
        """What the handshake is waiting for (for error messages), e.g. ``"READY"``."""
        if self._state == _GREETING:
            return "the peer's greeting"
        if self._auth_pending:
            return "our authenticator's verdict"
        return self._mechanism.waiting_for

    @property
    def peer_minor(self) -> int | None:
        """0 for a ZMTP 3.0 peer, 1 for 3.1; ``None`` until its greeting arrived."""
        return self._peer_minor

    @property
    def peer_socket_type(self) -> SocketType | None:
        """The peer's socket type; ``None`` until the handshake completes."""
        return self._peer_socket_type

    @property
    def peer_identity(self) -> bytes:
        """The peer's ``Identity`` property (``b""`` if it sent none or not yet)."""
        return self._peer_identity

    @property
    def peer_metadata(self) -> dict[str, bytes]:
        """All properties of the peer's handshake (empty until it completes)."""
        return dict(self._peer_metadata)

    @property
    def eof_received(self) -> bool:
        """True once :meth:`receive_data` was given ``b""``."""
        return self._eof

    @property
    def error(self) -> ProtocolError | None:
        """The error that killed the connection, if any; it is raised again by
        every later :meth:`receive_data` call."""
        return self._error

    @property
    def events_before_error(self) -> list[Event]:
        """Events completed in the :meth:`receive_data` call that raised
        :attr:`error`, before the violation (e.g. messages sent just before an
        ERROR command). They are not returned by that call; a caller that wants
        libzmq's behaviour of delivering them can take them from here."""
        return list(self._events_before_error)

    # --------------------------------------------------------------- sending

    def data_to_send(self) -> bytes:
        """Take the queued handshake and command bytes (greeting, READY, PONG,
        PING, SUBSCRIBE, ERROR...).

        Returns:
            Bytes to write to the peer, possibly empty.
        """
        self._flush_pong()
        out = bytes(self._out)
        self._out.clear()
        return out

    def _flush_pong(self) -> None:
        if self._pong_due is not None:
            context, self._pong_due = self._pong_due, None
            self._queue_command(encode_command(PONG, context))

    def _queue_after_pong(self, body: bytes) -> None:
        # Keep the wire order of what we were asked: the PONG owed is older.
        self._flush_pong()
        self._queue_command(body)

    def send_ping(self, ttl: float = 0.0, context: bytes = b"") -> None:
        """Queue a heartbeat PING.

        Args:
            ttl: Seconds the peer should wait for traffic from us before closing
                the connection; 0 = no limit. Sent in deciseconds, clamped to
                0-6553.5 s.
            context: Up to 16 bytes the peer echoes in its PONG.

        Raises:
            LocalProtocolError: The handshake is not complete or ``context`` is too long.
        """
        if self._state != _READY:
            raise LocalProtocolError("cannot PING before the handshake is complete")
        self._queue_after_pong(encode_ping(ttl, context))

    def send_error(self, reason: str) -> None:
        """Queue an ERROR command (fatal for the peer; close after sending it).
        Allowed at any time, including during the handshake. It is never
        encrypted, as rfc 26 requires.

        Args:
            reason: Short explanation, at most 255 UTF-8 bytes (libzmq sends a
                ZAP status code such as ``"400"``).

        Raises:
            LocalProtocolError: ``reason`` is too long.
        """
        self._flush_pong()
        self._out += encode_command_frame(encode_error(reason))

    def encode_messages(self, messages: Iterable[Sequence[BytesLike]]) -> Chunks:
        """Encode data messages, preceded by any queued command bytes.

        Small frames are coalesced into one ``bytearray``; a frame body of
        32 KiB or more is returned as its own chunk, uncopied, so do not mutate
        it until it has been sent. On a SUB or XSUB socket, a single-frame
        message starting with ``b"\\x01"`` (subscribe) or ``b"\\x00"``
        (cancel) becomes a SUBSCRIBE/CANCEL command if the peer speaks ZMTP 3.1,
        and is sent unchanged to a 3.0 peer, which expects that form.

        Args:
            messages: Each message is a non-empty sequence of frames.

        Returns:
            Chunks to pass, in order, to successive ``send_all`` calls.

        Raises:
            LocalProtocolError: The handshake is not complete, the connection has
                failed, or a message has no frames.
        """
        if self._state != _READY or self._error is not None:
            raise LocalProtocolError(
                "cannot send messages before the handshake is complete"
                if self._error is None
                else f"cannot send messages on a failed connection ({self._error})"
            )
        self._flush_pong()
        out = self._out
        base = len(out)
        self._out = bytearray()
        try:
            if self._fast:
                return encode_plain(out, messages, self._sub_commands)
            return encode_wrapped(out, messages, self._mechanism.encode_frame, self._sub_commands)
        except BaseException:
            # Nothing of this call is sent, but queued commands must survive.
            del out[base:]
            self._out = out
            raise

    def _queue_command(self, body: bytes) -> None:
        if self._state == _READY and self._mechanism.transforms_frames:
            flags, wire = self._mechanism.encode_frame(FLAG_COMMAND, body)
            self._out += frame_header(flags, len(wire))
            self._out += wire
        else:
            self._out += encode_command_frame(body)

    # ------------------------------------------------------------- receiving

    def receive_data(self, data: BytesLike) -> list[Event]:
        """Parse received bytes.

        Args:
            data: Bytes from the peer, in any split; ``b""`` means EOF.

        Returns:
            Every event completed by these bytes, in wire order. A data message
            appears only once all its frames have arrived.

        Raises:
            RemoteProtocolError: The peer broke ZMTP, including closing in the middle
                of a frame or message. :class:`HandshakeError` and
                :class:`MessageTooLargeError` are subclasses. The connection is
                then dead and every later call raises the same error.
            LocalProtocolError: Data was passed after EOF.
        """
        if self._error is not None:
            raise self._error
        if not data:
            return self._receive_eof()
        if self._eof:
            raise LocalProtocolError("receive_data() got data after EOF (b'')")
        events: list[Event] = []
        try:
            self._receive(data if type(data) is bytes else bytes(data), events)
        except RemoteProtocolError as exc:
            self._error = exc
            self._events_before_error = events
            raise
        return events

    def _receive_eof(self) -> list[Event]:
        self._eof = True
        if (
            self._tail
            or self._big_size >= 0
            or self._part
            or (self._state == _GREETING and self._greeting)
        ):
            if self._state == _GREETING:
                what = f"mid-greeting (after {len(self._greeting)} of {GREETING_SIZE} bytes)"
                if len(self._greeting) >= 10:
                    # libzmq sends its greeting in parts and hangs up as soon as
                    # it reads a mechanism other than its own.
                    what += (
                        "; libzmq does this when the security mechanism differs "
                        f"(ours is {self._mechanism.name.decode()})"
                    )
            elif self._tail or self._big_size >= 0:
                what = "mid-frame"
            else:
                what = "mid-message (after a frame with the MORE flag)"
            self._error = RemoteProtocolError(f"peer closed {what}")
            raise self._error
        return []

    def _receive(self, data: bytes, events: list[Event]) -> None:
        p = 0
        if self._big_size >= 0:
            self._big_chunks.append(data)
            self._big_have += len(data)
            if self._big_have < self._big_size:
                return
            # Parsing goes on in ``data`` right after the big frame's body.
            p = len(data) - (self._big_have - self._big_size)
            self._finish_big_frame(p, events)
        elif self._tail:
            data = self._tail + data
            self._tail = b""
        if self._state == _GREETING:
            p = self._receive_greeting(data, events)
        while p >= 0:
            if self._fast:
                p = self._parse_fast(data, p, events)
            else:
                p = self._parse_slow(data, p, events)

    def _receive_greeting(self, data: bytes, events: list[Event]) -> int:
        take = GREETING_SIZE - len(self._greeting)
        self._greeting += data[:take]
        peer = check_greeting(self._greeting, self._mechanism.name)
        if peer is None:
            return -1
        self._peer_minor = peer.minor
        self._mechanism.check_peer_greeting(peer_as_server=peer.as_server)
        self._state = _HANDSHAKE
        self._apply(self._mechanism.start(self._properties), events)
        return take

    def _enter_big(self, flags: int, size: int, data: bytes, start: int) -> None:
        # Keep a view rather than a copy: ``data`` is immutable bytes we own.
        self._big_flags = flags
        self._big_size = size
        self._big_have = len(data) - start
        self._big_chunks = [memoryview(data)[start:]]

    def _finish_big_frame(self, cut: int, events: list[Event]) -> None:
        # The last chunk is the bytes just received; only its first ``cut``
        # bytes belong to the body. Joining copies each body byte exactly once.
        chunks = self._big_chunks
        chunks[-1] = memoryview(chunks[-1])[:cut]
        body = b"".join(chunks)
        flags = self._big_flags
        self._big_size = -1
        self._big_chunks = []
        self._on_frame(flags, body, events)

    def _parse_fast(self, data: bytes, p: int, events: list[Event]) -> int:
        # The hot loop (NULL, after the handshake). Everything stays in locals,
        # and short data frames, by far the most common, get the first and
        # shortest branch; commands leave the loop through a method call.
        n = len(data)
        last_header = n - 1  # a header needs at least 2 bytes
        part = self._part
        part_size = self._part_size
        limit = self._maxmsgsize
        emit = events.append
        while p < last_header:
            flags = data[p]
            if not flags & 6:  # neither LONG nor COMMAND
                size = data[p + 1]
                start = p + 2
                end = start + size
                if limit >= 0:
                    part_size += size
                    if part_size > limit:
                        raise message_too_large(part_size, limit)
                if end > n:
                    return self._stash_big(part, part_size, flags, size, data, start)
                part.append(data[start:end])
                p = end
                if not flags & 1:
                    emit(part)
                    part = []
                    part_size = 0
                continue
            if flags & 2:
                if p + 9 > n:
                    break
                size = _unpack_size(data, p + 1)[0]
                if size >= MAX_FRAME_SIZE:
                    raise impossible_frame(size)
                start = p + 9
            else:
                size = data[p + 1]
                start = p + 2
            end = start + size
            if flags & 4:
                if size > MAX_COMMAND_SIZE:
                    raise command_too_large(size)
                if end > n:
                    return self._stash_big(part, part_size, flags, size, data, start)
                self._on_command(flags, data[start:end], events)
            else:
                if limit >= 0:
                    part_size += size
                    if part_size > limit:
                        raise message_too_large(part_size, limit)
                if end > n:
                    return self._stash_big(part, part_size, flags, size, data, start)
                part.append(data[start:end])
                if not flags & 1:
                    emit(part)
                    part = []
                    part_size = 0
            p = end
        # Out of complete headers: keep the partial one (at most 8 bytes).
        self._part = part
        self._part_size = part_size
        if p < n:
            self._tail = data[p:]
        return -1

    def _stash_big(
        self, part: Frames, part_size: int, flags: int, size: int, data: bytes, start: int
    ) -> int:
        self._part = part
        self._part_size = part_size
        self._enter_big(flags, size, data, start)
        return -1

    def _parse_slow(self, data: bytes, p: int, events: list[Event]) -> int:
        # Handshake, and frame-transforming mechanisms: one frame at a time
        # through _on_frame. Returns the position as soon as the fast path can
        # take over, -1 once the data is used up.
        n = len(data)
        while p + 1 < n:
            flags = data[p]
            if flags & FLAG_LONG:
                if p + 9 > n:
                    break
                size = _unpack_size(data, p + 1)[0]
                if size >= MAX_FRAME_SIZE:
                    raise impossible_frame(size)
                start = p + 9
            else:
                size = data[p + 1]
                start = p + 2
            self._check_header_slow(flags, size)
            end = start + size
            if end > n:
                self._enter_big(flags, size, data, start)
                return -1
            self._on_frame(flags, data[start:end], events)
            p = end
            if self._fast:
                return p
        if p < n:
            self._tail = data[p:]
        return -1

    def _check_header_slow(self, flags: int, size: int) -> None:
        if self._state != _READY:
            if not flags & FLAG_COMMAND:
                raise HandshakeError(
                    "peer sent data before the handshake completed (expected a "
                    f"{self._mechanism.name.decode()} handshake command)"
                )
            if size > MAX_COMMAND_SIZE:
                raise command_too_large(size)
            return
        # Wrapped frames (CURVE MESSAGE) carry data: maxmsgsize applies to
        # their payload, not the command-size cap.
        limit = self._maxmsgsize
        if limit >= 0:
            total = self._part_size + size - self._mechanism.frame_overhead
            if total > limit:
                raise message_too_large(total, limit)

    def _on_frame(self, flags: int, body: bytes, events: list[Event]) -> None:
        # One complete frame, in any state, for the slow and big-frame paths.
        if self._state != _READY:
            self._on_handshake_frame(flags, body, events)
            return
        if self._mechanism.transforms_frames:
            if flags & FLAG_COMMAND:
                name, data = split_command(body)
                if name == ERROR:  # never wrapped (rfc 26)
                    raise HandshakeError(f"peer sent ERROR: {decode_error(data)}")
            flags, body = self._mechanism.decode_frame(flags, body)
            if not flags & FLAG_COMMAND:
                # The header check allowed for the mechanism's overhead; this
                # one is exact.
                total = self._part_size + len(body)
                if 0 <= self._maxmsgsize < total:
                    raise message_too_large(total, self._maxmsgsize)
                self._part_size = total
        if flags & FLAG_COMMAND:
            self._on_command(flags, body, events)
            return
        self._part.append(body)
        if not flags & FLAG_MORE:
            events.append(self._part)
            self._part = []
            self._part_size = 0

    def _on_handshake_frame(self, flags: int, body: bytes, events: list[Event]) -> None:
        # Data frames never get here: _check_header_slow refused them.
        if flags & FLAG_MORE:
            raise RemoteProtocolError("peer sent a command frame with the MORE flag set")
        if body[1:5] == b"RROR" and len(body) > 5 and body[5] == len(body) - 6:
            # libzmq 4.3's PLAIN server sends its ERROR one byte short: the
            # name's length byte and "E" are replaced by one garbage byte.
            name, data = ERROR, body[5:]
        else:
            name, data = split_command(body)
        if name == ERROR:
            reason = decode_error(data)
            # isdigit() alone also accepts digits int() cannot read, such as "²".
            status = (
                int(reason) if len(reason) == 3 and reason.isascii() and reason.isdigit() else 0
            )
            raise AuthenticationError(
                f"peer refused the handshake: ERROR {reason!r}", status, by_peer=True
            )
        self._apply(self._mechanism.handle_command(name, data), events)

    def _on_command(self, flags: int, body: bytes, events: list[Event]) -> None:
        # A command after the handshake.
        if flags & FLAG_MORE:
            raise RemoteProtocolError("peer sent a command frame with the MORE flag set")
        name, data = split_command(body)
        if name == PING:
            ping = decode_ping(data)
            self._pong_due = ping.context
            events.append(ping)
        elif name == PONG:
            events.append(Pong(data))
        elif name == SUBSCRIBE:
            # Subscriptions only mean something to a publisher; libzmq drops
            # them elsewhere too.
            if self._accepts_subscriptions:
                events.append(Subscribe(data))
        elif name == CANCEL:
            if self._accepts_subscriptions:
                events.append(Cancel(data))
        elif name == ERROR:
            raise HandshakeError(f"peer sent ERROR: {decode_error(data)}")
        elif name == READY:
            raise RemoteProtocolError("peer sent READY again after the handshake completed")
        # Anything else is an unknown command, ignored as libzmq does, so newer
        # protocol revisions can add commands.

    def _apply(self, step: HandshakeStep, events: list[Event]) -> None:
        properties = step.peer_properties
        if properties is not None:
            # Refuse an unfit peer as soon as its properties arrive, as libzmq
            # does. Our NULL READY went out when the handshake started (libzmq
            # sends it whatever the peer's type, and the transport flushes it
            # before hanging up), so a libzmq peer sees the mismatch itself and
            # stops reconnecting. A READY that answers the peer's (the PLAIN
            # and CURVE servers') or waits for ZAP is not sent to an unfit
            # peer: libzmq's servers refuse the INITIATE without replying too.
            peer_type, identity = check_peer_properties(self._socket_type, properties)
        for body in step.commands:
            self._out += encode_command_frame(body)
        if step.authenticate is not None:
            self._auth_pending = True
            events.append(AuthRequest(self._mechanism.name, step.authenticate))
        elif properties is not None:
            self._complete_handshake(properties, peer_type, identity, events)

    def auth_result(
        self,
        status_code: bytes | int,
        status_text: str = "",
        *,
        user_id: bytes = b"",
        metadata: Mapping[str, bytes] | None = None,
    ) -> list[Event]:
        """Deliver the verdict on an :class:`AuthRequest`.

        Args:
            status_code: ZAP's status: 200 accepts; 300 (try later), 400
                (refused) and 500 (authenticator failure) refuse.
            status_text: Why, for the error raised on refusal.
            user_id: The identity the authenticator vouches for; peers see it
                as ``user_id`` and the ``User-Id`` property.
            metadata: Extra properties the authenticator attaches to the peer.

        Returns:
            Events it completes (:class:`HandshakeComplete` if the handshake is done).

        Raises:
            AuthenticationError: The verdict refuses the peer. Unless it was
                300, an ERROR command with the status code is queued first,
                as libzmq sends; send :meth:`data_to_send` before closing.
            LocalProtocolError: No authentication was pending.
        """
        if not self._auth_pending or self._error is not None:
            raise LocalProtocolError("auth_result() called with no authentication pending")
        self._auth_pending = False
        code = int(status_code)
        if code != 200:
            if code != 300:
                self._queue_command(encode_error(f"{code:03d}"))
            detail = f": {status_text}" if status_text else ""
            self._error = AuthenticationError(
                f"authentication refused the peer ({code}{detail})", code
            )
            raise self._error
        self._user_id = bytes(user_id)
        self._zap_metadata = dict(metadata or {})
        events: list[Event] = []
        try:
            self._apply(self._mechanism.auth_accepted(), events)
        except RemoteProtocolError as exc:
            # The peer's metadata, held back for the verdict, may still be refused.
            self._error = exc
            raise
        return events

    def _complete_handshake(
        self,
        properties: dict[str, bytes],
        peer_type: SocketType,
        identity: bytes,
        events: list[Event],
    ) -> None:
        assert self._peer_minor is not None
        self._peer_socket_type = peer_type
        self._peer_identity = identity
        properties = {**properties, **self._zap_metadata}
        if self._user_id:
            properties["User-Id"] = self._user_id
        self._peer_metadata = properties
        self._state = _READY
        self._fast = not self._mechanism.transforms_frames
        # ZMTP 3.0 peers (libzmq <= 4.3.2 advertises 3.0) expect subscriptions
        # as 0x01/0x00-prefixed data messages.
        self._sub_commands = self._socket_type in _SENDS_SUBSCRIPTIONS and self._peer_minor >= 1
        events.append(
            HandshakeComplete(
                peer_socket_type=peer_type,
                peer_identity=identity,
                peer_metadata=dict(properties),
                peer_minor=self._peer_minor,
                mechanism=self._mechanism.name,
                user_id=self._user_id,
                peer_key=self._mechanism.peer_key,
            )
        )
