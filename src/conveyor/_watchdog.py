"""A watchdog for the event loop: it notices when the loop stops turning, and says where.

A blocking call in an ``async def`` step (``time.sleep``, a sync driver) stops every
process of the worker, and once it outlasts a lease the roles lapse. While some process
is busy (only then: an idle workflow is not woken), a thread of the watchdog's own asks
the loop to answer every quarter of ``threshold``; when an answer is ``threshold``
seconds late it reports the stall with the innermost frames the loop's thread is
executing (the user's code, not asyncio's), once, and again with its length when the
loop answers.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Callable

__all__ = ["LoopWatchdog", "where_blocked"]

_SKIP = (
    os.path.dirname(asyncio.__file__),
    os.path.dirname(threading.__file__) + os.sep + "threading.py",
    os.path.dirname(__file__),
)

OnStall = Callable[[float, str, bool], None]
"""``(seconds blocked, where, over)``: ``over`` is false while the stall lasts."""


def where_blocked(thread_id: int, depth: int = 3) -> str:
    """The innermost frames of thread ``thread_id`` outside asyncio and conveyor."""
    frame = sys._current_frames().get(thread_id)
    found: list[str] = []
    while frame is not None and len(found) < depth:
        filename = frame.f_code.co_filename
        if not filename.startswith(_SKIP):
            found.append(f"{frame.f_code.co_name} ({filename}:{frame.f_lineno})")
        frame = frame.f_back
    return " <- ".join(found) or "unknown"


class LoopWatchdog:
    """Reports stalls of the running loop longer than ``threshold`` seconds while
    ``active()`` (read from the watchdog's thread) says there is work in hand."""

    def __init__(self, threshold: float, on_stall: OnStall, active: Callable[[], bool]) -> None:
        self._threshold = threshold
        self._on_stall = on_stall
        self._active = active
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._answered = threading.Event()

    def start(self) -> None:
        """Watch the running loop from a thread (idempotent)."""
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._watch, name="conveyor-loop-watchdog", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        """Stop watching (idempotent)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join)

    def _busy(self) -> bool:
        try:
            return self._active()
        except RuntimeError:  # the loop changed what it reads meanwhile: look again later
            return True

    def _watch(self) -> None:
        loop = self._loop
        assert loop is not None
        period = self._threshold / 4
        while not self._stop.wait(period):
            if not self._busy():
                continue
            self._answered.clear()
            asked = time.monotonic()
            try:
                loop.call_soon_threadsafe(self._answered.set)
            except RuntimeError:  # the loop is closed
                return
            if self._answered.wait(self._threshold):
                continue
            where = where_blocked(self._loop_thread)
            self._on_stall(time.monotonic() - asked, where, False)
            while not self._answered.wait(period):
                if self._stop.is_set():
                    return
            self._on_stall(time.monotonic() - asked, where, True)
