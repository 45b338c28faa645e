"""The types of the functions a workflow author writes, checked by mypy at ``add_*`` calls.

Each may be ``async def`` or plain ``def`` (plain ones run in the workflow's own bounded
thread pool). ``S`` is the workflow's status enum, ``T`` its object type.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeAlias, TypeVar

from ._markers import Marker
from ._record import Run, TypedRecord

__all__ = [
    "AsyncStep",
    "CallbackFn",
    "DeleteFn",
    "HookFn",
    "ScheduleFilter",
    "StepFn",
    "StepResult",
    "TimeoutFn",
    "TimerFn",
]

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)

StepResult: TypeAlias = S | Marker
"""What a step, callback or timeout function returns: the next status, or a marker."""

StepFn: TypeAlias = Callable[[Run[T, S]], Awaitable[StepResult[S]] | StepResult[S]]
"""``step(run)``: moves a run on from the status it consumes."""

CallbackFn: TypeAlias = Callable[[Run[T, S], bytes], Awaitable[StepResult[S]] | StepResult[S]]
"""``callback(run, payload)``: an outside caller moves the run."""

TimerFn: TypeAlias = Callable[[Run[T, S], datetime], Awaitable[datetime | None] | datetime | None]
"""``timer(run, now)``: when the run at this status times out (``None``: it does not)."""

TimeoutFn: TypeAlias = Callable[[Run[T, S], datetime], Awaitable[StepResult[S]] | StepResult[S]]
"""``on_timeout(run, now)``: what happens when the timeout fires."""

HookFn: TypeAlias = Callable[[TypedRecord[T, S]], Awaitable[None] | None]
"""``hook(record)``: told (at least once) that a run was paused, cancelled or completed."""

DeleteFn: TypeAlias = Callable[[T], Awaitable[T | None] | T | None]
"""``custom_delete(object)``: the scrubbed object to keep (``None``: scrub in place)."""

ScheduleFilter: TypeAlias = Callable[[datetime], Awaitable[bool] | bool]
"""``filter(slot)``: whether a schedule fires at ``slot``."""

AsyncStep: TypeAlias = Callable[[Run[T, S]], Awaitable[StepResult[S]]]
"""A step-like function once made async (what the engine calls)."""
