"""The trio task that runs one actor, and how each of its messages is handled.

:func:`run` is a cell's task (``_cell``): it drives the cell through its
incarnations (``on_start``, the mailbox loop, ``on_stop``, the supervisor's
verdict) until it ends for good. :func:`handle` runs one message in that
task; :func:`handle_now` runs a call from another node in the task that
received it, when nobody could tell the difference. These are the hot path
of every message: each avoids what the common case does not need (a cancel
scope for a tell or a plain ``def``, a coroutine frame of its own), and the
comments say where.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from ._actor import Actor, plain_handler_names
from ._errors import ActorStoppedError
from ._exit import ExitReason
from ._mail import STOP, Call, Resume

if TYPE_CHECKING:
    from ._cell import Cell

__all__ = ["Crashed", "handle", "handle_now", "run"]

log = logging.getLogger("trimq.actors")


class Crashed(Exception):
    """A handler raised (its ``__cause__``): the incarnation ends."""


async def run(cell: Cell) -> None:
    """A cell's task, through every incarnation until it ends for good."""
    host = cell.host
    host.adopt_task()  # its refs use its node, whichever node's task spawned it
    ended = False  # not cut short by the node's cancellation
    try:
        # None: its first on_start failed, and spawn() raised the error.
        reason = await _finish(cell, await _live(cell))
        while reason is not None and cell.supervisor is not None and not host.closing:
            if not cell.halted:
                host.tell_supervisor(cell, reason)
            if await cell.wait_verdict() != "restart":
                break
            failed = _rebuild(cell, reason)
            if failed is not None:
                reason = failed  # its supervisor hears of it, as of a crash
                continue
            reason = await _finish(cell, await _live(cell))
        ended = True
    finally:
        if not ended:  # only the node's own cancellation gets out of run()
            host.cancelled()
        _close(cell, tell_watchers=ended)
        cell.phase = "ended"
        if cell.start == "waiting":  # killed, or the node cancelled, during on_start
            cell.start = ActorStoppedError(f"actor {cell.ref.name!r} stopped while starting")
        cell.moved()


def _rebuild(cell: Cell, reason: ExitReason) -> ExitReason | None:
    # A restart: a fresh instance, or (its constructor failed) how that
    # failed restart ended.
    cell.last_exit = reason
    cell.generation += 1
    try:
        actor = cell.host.make_actor(cell.cls, cell.ref, cell.args, cell.kwargs)
    except Exception as exc:  # a failing constructor is a failed restart
        log.warning("actor %r could not be rebuilt: %r", cell.ref.name, exc)
        cell.halted = False  # its supervisor hears of this one
        cell.moved()  # restart() returns
        return ExitReason("crashed", exc)
    cell.begin(actor)
    return None


async def _call_hook(hook: Callable[[], Any]) -> None:
    result = hook()
    if inspect.isawaitable(result):
        await result


async def _live(cell: Cell) -> Exception | None:
    # One incarnation, from on_start (or on_restart) to its last message, in
    # its cancel scope; returns the error that crashed it, if one did. The
    # message loop is here rather than in a helper: an idle actor's stack is
    # kept for as long as it lives, one coroutine frame per level.
    actor = cell.actor
    with cell.scope:
        try:
            if cell.last_exit is not None:  # a restart
                await _call_hook(functools.partial(actor.on_restart, cell.last_exit))
            elif type(actor).on_start is not Actor.on_start:
                await _call_hook(actor.on_start)
        except Exception as exc:
            if cell.start != "waiting":  # a first start raises it into spawn()
                log.warning("actor %r failed to restart: %r", cell.ref.name, exc)
            return exc
        cell.phase = "idle"
        if cell.start == "waiting":
            cell.start = "started"
        cell.moved()
        # recv() itself rather than recv_object(), which wraps it: one
        # coroutine frame less per message (the frames are objects either way).
        inbox = cell.inbox
        try:
            while not cell.halted:
                cell.phase = "idle"
                message: object = await inbox.recv()
                if message is STOP:
                    return None
                assert isinstance(message, Call)
                cell.phase = "busy"
                await handle(cell, message)
        except Crashed as crashed:
            error = crashed.__cause__
            assert isinstance(error, Exception)
            _log_crash(cell, error)
            return error
    return None  # halted, killed, or crashed in handle_now


def _log_crash(cell: Cell, error: Exception) -> None:
    log.warning(
        "actor %r on node %r crashed: %s: %s",
        cell.ref.name,
        cell.host.name,
        type(error).__name__,
        error,
        exc_info=error,
    )


async def _finish(cell: Cell, crash: Exception | None) -> ExitReason | None:
    # However the incarnation ended (stop, crash, kill, a failed start): no
    # more timers, no answer for an ask in flight, and its monitors and
    # subscriptions are taken now, since once closed the name may be reused
    # at once. Returns how it ended (None: a first on_start failed, and
    # spawn() raises its error).
    host = cell.host
    first_start_failed = crash is not None and cell.start == "waiting"
    cell.phase = "stopping"
    cell.moved()
    try:
        cell.cancel_timers()
        _fail_current(cell)
        watchers = host.take_watchers(cell.ref)
        host.drop_topics(cell.ref)
        if cell.supervisor is None or host.closing:
            _close(cell)  # no restart can follow: refuse messages from now on
        if first_start_failed:
            await host.end_children(cell)  # those a failing on_start did start
            cell.start = crash
            return None
        if cell.killed:
            reason = ExitReason("killed")
        else:
            crash = cell.fatal or crash
            reason = ExitReason("crashed", crash) if crash else ExitReason("stopped")
            with trio.CancelScope(shield=host.closing) as cell.stop_scope:
                try:
                    await _call_hook(cell.actor.on_stop)
                except Exception:
                    log.exception("on_stop of actor %r raised", cell.ref.name)
        await host.end_children(cell)
        host.notify_down(cell.ref, reason, watchers)
        host.break_links(cell, reason)
        return reason
    finally:
        if cell.start == "waiting":  # killed (or halted) during its first on_start
            # spawn() fails now: a supervisor waiting in it cannot give a verdict.
            cell.start = ActorStoppedError(f"actor {cell.ref.name!r} stopped while starting")
        cell.phase = "between"
        cell.moved()


def _fail_current(cell: Cell) -> None:
    reply = cell.reply
    if reply is not None and not reply.done.is_set():
        reply.fail(cell.fatal or ActorStoppedError(f"actor {cell.ref.name!r} was killed"))
    cell.reply = None


def _close(cell: Cell, *, tell_watchers: bool = False) -> None:
    # The cell ends for good: refuse new messages and fail the queued ones.
    cell.moved()
    inbox = cell.inbox
    if inbox.closed:
        return
    cell.host.forget(cell, tell_watchers=tell_watchers)
    stopped = ActorStoppedError(f"actor {cell.ref.name!r} stopped before handling this")
    while True:
        try:
            message: object = inbox.recv_multipart_nowait()[0]
        except (trio.WouldBlock, trio.ClosedResourceError):
            break
        if isinstance(message, Call) and message.reply is not None:
            message.reply.fail(stopped)
    cell.outbox.close_nowait()
    inbox.close_nowait()


# ---------------------------------------------------------------------- handling


def handle_now(cell: Cell, call: Call) -> bool:
    """Handle ``call`` in the calling task if nobody could tell the difference.

    That is when the actor waits for a message and has none queued, and
    the handler is a plain ``def`` (which cannot wait, so nothing else can
    run meanwhile): the result is the same as through the mailbox, minus
    two task switches. A crash ends the actor's incarnation as it would
    in its own task. False: post ``call`` to the mailbox as usual.
    """
    if (
        cell.phase != "idle"
        or cell.halted
        or call.method not in plain_handler_names(type(cell.actor))
        or cell.scope.cancel_called
        or cell.inbox.has_input()
    ):
        return False
    reply = call.reply
    if reply is not None and reply.abandoned:
        return True
    cell.phase = "busy"  # a message it sends itself meanwhile goes to the mailbox
    try:
        result = getattr(cell.actor, call.method)(*call.args, **call.kwargs)
    except Exception as exc:
        if exc.__class__ is TypeError and _refuse_unbound(cell, call, exc):
            return True  # the caller's mistake: the actor goes on
        if reply is not None:
            exc.add_note(f"raised by actor {cell.ref.name!r} handling {call.method}()")
            reply.fail(exc)
        _log_crash(cell, exc)
        cell.fatal = exc
        cell.scope.cancel()
        return True
    finally:
        cell.phase = "idle"  # its task still waits: it cannot have run meanwhile
    if result is not None and inspect.isawaitable(result):
        # A def that returned something to wait for: the actor's task waits
        # for it, next (its mailbox is empty, so there is room).
        cell.outbox.send_object_nowait(Resume(result, call))
    elif reply is not None:
        reply.succeed(result)
    return True


async def handle(cell: Cell, call: Call) -> None:
    """Handle ``call`` in the actor's task.

    Raises:
        Crashed: The handler raised; the asker, if any, got the error.
    """
    reply = call.reply
    if reply is None:
        # A tell: nobody can cancel it, so no cancel scope (the costliest
        # part of handling a small message).
        try:
            # The handler's result, or what handle_now's call of it returned.
            if call.__class__ is Resume:
                result = call.awaitable
            else:
                result = getattr(cell.actor, call.method)(*call.args, **call.kwargs)
            if result is not None and inspect.isawaitable(result):
                await result
        except Exception as exc:
            if exc.__class__ is TypeError and _refuse_unbound(cell, call, exc):
                return  # the caller's mistake: the actor goes on
            raise Crashed from exc
        return
    if reply.abandoned:
        if isinstance(call, Resume) and inspect.iscoroutine(call.awaitable):
            call.awaitable.close()  # never to be awaited
        return
    cell.reply = reply
    try:
        if call.__class__ is Resume:
            result = call.awaitable
        else:
            result = getattr(cell.actor, call.method)(*call.args, **call.kwargs)
        if result is not None and inspect.isawaitable(result):
            # Only a handler that waits can be cancelled while it runs (the
            # asker gave up): a cancel scope for those alone, since it is
            # the costliest part of answering a small ask.
            with trio.CancelScope() as scope:
                reply.scope = scope
                result = await result
            if scope.cancelled_caught:
                cell.reply = None
                return
    except Exception as exc:
        if exc.__class__ is TypeError and _refuse_unbound(cell, call, exc):
            cell.reply = None
            return  # the caller's mistake: the actor goes on
        exc.add_note(f"raised by actor {cell.ref.name!r} handling {call.method}()")
        reply.fail(exc)
        raise Crashed from exc
    # Killed mid-handler, the reply stays in cell.reply for _fail_current.
    cell.reply = None
    reply.succeed(result)


def _refuse_unbound(cell: Cell, call: Call, exc: TypeError) -> bool:
    """Whether ``exc`` says ``call``'s arguments do not bind to its handler's
    signature (the caller's mistake, not the actor's): if so, the asker gets
    a TypeError that says so, or a tell is logged and dropped.

    Only a TypeError raised before any Python frame ran under the caller (its
    traceback has no frame past the caller's: the handler's never began) can
    be one; the signature confirms it. A TypeError from the handler's body,
    a coroutine's or a wrapper's, is a crash as any error is. This runs only
    when a handler raised TypeError, so the hot path never asks for a signature.
    """
    tb = exc.__traceback__
    if tb is None or tb.tb_next is not None or call.__class__ is Resume:
        return False
    handler = getattr(cell.actor, call.method, None)
    if handler is None:
        return False
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):  # no signature to tell
        return False
    try:
        signature.bind(*call.args, **call.kwargs)
    except TypeError:
        pass
    else:
        return False  # they bind: the TypeError came from somewhere else
    with contextlib.suppress(Exception):  # annotations as written, not as strings
        signature = inspect.signature(handler, eval_str=True)
    where = f"{type(cell.actor).__name__}.{call.method}() of actor {cell.ref.name!r}"
    message = f"{where}: the arguments do not match its signature {call.method}{signature}: {exc}"
    reply = call.reply
    if reply is None:
        log.warning("dropped a tell to %s", message)
    else:
        reply.fail(TypeError(message))
    return True
