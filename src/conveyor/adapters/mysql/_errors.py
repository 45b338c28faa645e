"""asyncmy's exceptions as conveyor's: ``AdapterUnavailable`` when the server cannot be
reached or the connection died (worth a retry on a new connection), ``AdapterError`` for
everything else. Messages never quote the URL's password (``scrub``)."""

from __future__ import annotations

import asyncmy.errors

from ..._errors import AdapterError, AdapterUnavailable
from ..._urls import scrub

__all__ = [
    "DEADLOCK",
    "DUPLICATE_KEY",
    "LOCK_WAIT_TIMEOUT",
    "error_code",
    "is_connection_error",
    "translate",
]

DUPLICATE_KEY = 1062
DEADLOCK = 1213
LOCK_WAIT_TIMEOUT = 1205

# Client and server errors that mean "this connection (or the server) is gone".
_GONE = {
    2002,  # can't connect (socket)
    2003,  # can't connect (TCP)
    2006,  # server has gone away
    2013,  # lost connection during query
    2055,  # lost connection (system error)
    1053,  # server shutdown in progress
    1077,  # normal shutdown
    1079,  # shutdown complete
    1152,  # aborted connection
    1927,  # connection was killed (MariaDB)
    1317,  # query execution was interrupted (KILL QUERY / KILL)
    4031,  # disconnected by the server for inactivity (MySQL 8)
    1040,  # too many connections
}


def error_code(exc: BaseException) -> int | None:
    """The MySQL error number of a driver exception (``None`` for others)."""
    if isinstance(exc, asyncmy.errors.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` means the connection or the server failed (not the statement)."""
    if isinstance(exc, AdapterUnavailable | OSError | TimeoutError | ConnectionError):
        return True
    if isinstance(exc, asyncmy.errors.InterfaceError):
        return True
    code = error_code(exc)
    return code in _GONE


def translate(exc: BaseException, what: str, url: str = "") -> AdapterError:
    """The conveyor error for a driver failure while doing ``what`` (chain it as the cause)."""
    if isinstance(exc, AdapterError):
        return exc
    text = scrub(repr(exc), url) if url else repr(exc)
    if is_connection_error(exc):
        return AdapterUnavailable(f"MySQL unavailable while {what}: {text}")
    return AdapterError(f"MySQL failed while {what}: {text}")
