"""Errors of the actor runtime."""

from __future__ import annotations

from .._errors import TrimqError

__all__ = [
    "ActorError",
    "ActorNotFoundError",
    "ActorStoppedError",
    "CodecError",
    "LinkedActorError",
    "RestartIntensityError",
]


class ActorError(TrimqError):
    """A handler failed with an exception that cannot be re-raised as itself.

    Locally the handler's own exception is re-raised instead; this stands in
    for one that cannot be rebuilt (a type the caller cannot import).

    Attributes:
        type_name: The original exception's qualified type name.
        traceback_text: The formatted traceback from where it was raised.

    .. versionadded:: 0.1
    """

    def __init__(self, message: str, *, type_name: str = "", traceback_text: str = "") -> None:
        super().__init__(message)
        self.type_name = type_name
        self.traceback_text = traceback_text


class ActorNotFoundError(TrimqError, LookupError):
    """No actor answers to that reference or name (never spawned, or stopped for good).

    .. versionadded:: 0.1
    """


class ActorStoppedError(TrimqError):
    """The actor stopped (or crashed) before it could handle the message.

    .. versionadded:: 0.1
    """


class LinkedActorError(TrimqError):
    """A linked actor crashed or was killed, so this one crashed too.

    Attributes:
        ref: The linked actor that ended first.
        reason: Why it ended (an :class:`ExitReason`).

    .. versionadded:: 0.1
    """

    def __init__(self, ref: object, reason: object) -> None:
        super().__init__(f"linked actor {getattr(ref, 'name', ref)!r} ended: {reason}")
        self.ref = ref
        self.reason = reason


class RestartIntensityError(TrimqError):
    """A supervisor's children ended more often than its restart intensity allows.

    The supervisor crashes with it, so that its own supervisor decides.

    .. versionadded:: 0.1
    """


class CodecError(TrimqError, ValueError):
    """A payload could not be encoded, or frames could not be decoded.

    .. versionadded:: 0.1
    """
