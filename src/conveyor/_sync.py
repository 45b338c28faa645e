"""Plain (``def``) user functions run in a bounded thread pool of the workflow's own."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar, cast

__all__ = ["AbandonSlot", "ThreadRunner", "abandon_threads", "is_async_callable"]

P = ParamSpec("P")
R = TypeVar("R")


class AbandonSlot:
    """Where ``ThreadRunner.call`` leaves the thread it abandoned (see ``abandon_threads``)."""

    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: asyncio.Future[Any] | None = None


abandon_threads: contextvars.ContextVar[AbandonSlot | None] = contextvars.ContextVar(
    "conveyor_abandon_threads", default=None
)
"""Set by an attempt with a time limit: a call cancelled meanwhile does not wait for its
thread, but leaves it in the slot and returns (the thread runs on, abandoned)."""


def is_async_callable(fn: object) -> bool:
    """``async def`` functions, partials of them, and objects with an ``async __call__``."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004
    return call is not None and inspect.iscoroutinefunction(call)


class ThreadRunner:
    """Runs blocking functions in threads without ever abandoning one.

    A thread cannot be cancelled: if the awaiting task is cancelled, the task still waits
    for the thread to finish before the cancellation propagates, so whoever holds a role
    for the work keeps it until the work has really stopped. Inside an attempt with a
    time limit (``abandon_threads`` set) it does not wait: the thread is abandoned, and
    counted in ``abandoned`` until it ends.
    """

    def __init__(self, max_workers: int = 16, name: str = "conveyor") -> None:
        self._max_workers = max_workers
        self._name = name
        self._executor: ThreadPoolExecutor | None = None
        self.abandoned: int = 0
        """Threads still running whose callers stopped waiting (past a time limit)."""

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._max_workers, thread_name_prefix=self._name)
        return self._executor

    async def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        ctx = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._pool(), functools.partial(ctx.run, fn, *args, **kwargs))
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            slot = abandon_threads.get()
            if slot is not None and not fut.done():
                self.abandoned += 1
                slot.future = fut
                fut.add_done_callback(self._reclaim)
                raise
            await asyncio.wait({fut})
            if not fut.cancelled():
                fut.exception()  # retrieved: the caller is gone, so asyncio must not log it
            raise

    def _reclaim(self, fut: asyncio.Future[Any]) -> None:
        """An abandoned thread ended: its result goes nowhere."""
        self.abandoned -= 1
        if not fut.cancelled():
            fut.exception()

    def wrap(self, fn: Callable[P, Awaitable[R] | R]) -> Callable[P, Awaitable[R]]:
        """An async callable for ``fn``: itself if it is async, else a call in a thread.

        Assign the result to a variable of the async type you need: mypy infers ``R``
        from that context.
        """
        if is_async_callable(fn):
            return cast(Callable[P, Awaitable[R]], fn)

        async def in_thread(*args: P.args, **kwargs: P.kwargs) -> R:
            # A plain function returns its value, never an awaitable.
            return cast(R, await self.call(fn, *args, **kwargs))

        in_thread.__name__ = getattr(fn, "__name__", "in_thread")
        return in_thread

    def shutdown(self) -> None:
        """Release the threads (running ones finish first)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
