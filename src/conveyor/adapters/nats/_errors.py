"""nats-py's exceptions as conveyor's: ``AdapterUnavailable`` when the server cannot be
reached, answers nothing or the connection is down (worth a retry), ``AdapterError`` for
everything else. Messages never quote the URL's password (``scrub``)."""

from __future__ import annotations

import asyncio

import nats.errors
import nats.js.errors

from ..._errors import AdapterError, AdapterUnavailable
from ..._urls import scrub

__all__ = ["checkpoint", "is_unavailable", "translate"]

_GONE = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.NoServersError,
    nats.errors.NoRespondersError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.TimeoutError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,
    asyncio.TimeoutError,
    ConnectionError,
    OSError,
)


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the server or the connection failed (not the request)."""
    return isinstance(exc, (AdapterUnavailable, *_GONE))


def translate(exc: BaseException, what: str, url: str = "") -> AdapterError:
    """The conveyor error for a client failure while doing ``what`` (chain it as the cause)."""
    if isinstance(exc, AdapterError):
        return exc
    text = scrub(repr(exc), url) if url else repr(exc)
    if is_unavailable(exc):
        return AdapterUnavailable(f"NATS unavailable while {what}: {text}")
    return AdapterError(f"NATS failed while {what}: {text}")


def checkpoint() -> None:
    """Raise ``CancelledError`` if the current task was cancelled and the cancellation got
    lost: nats-py awaits ``asyncio.wait_for`` in its requests (connect, JetStream API
    calls, publish acks), which on Python 3.11 can swallow a cancellation that arrives as
    the answer does. The task's ``cancelling()`` count still shows it."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
