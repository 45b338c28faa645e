"""The default ``Logger``: the standard ``logging`` module."""

from __future__ import annotations

import logging

from ._errors import AdapterUnavailable

__all__ = ["StdLogger"]


class StdLogger:
    """Logs to the ``conveyor`` logger (or the one given) with ``meta`` as ``extra`` fields."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("conveyor")

    def debug(self, msg: str, **meta: object) -> None:
        if self._log.isEnabledFor(logging.DEBUG):
            self._log.debug("%s %s", msg, _fmt(meta), extra={"conveyor": meta})

    def error(self, msg: str, exc: BaseException | None = None, **meta: object) -> None:
        if isinstance(exc, AdapterUnavailable):
            # The backend is away (a restart, a network cut): one line, no traceback.
            self._log.error("%s %s: %s", msg, _fmt(meta), exc, extra={"conveyor": meta})
            return
        self._log.error("%s %s", msg, _fmt(meta), exc_info=exc, extra={"conveyor": meta})


def _fmt(meta: dict[str, object]) -> str:
    return " ".join(f"{k}={v!r}" for k, v in meta.items())
