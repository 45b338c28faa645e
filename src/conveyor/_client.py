"""``WorkflowClient``: a workflow's API for processes that run none of its work."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Generic, TypeVar

from ._record import Run

if TYPE_CHECKING:
    from ._workflow import Workflow

__all__ = ["WorkflowClient"]

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)


class WorkflowClient(Generic[T, S]):
    """Trigger, wait for, call back and control runs from an API process.

    Get one from ``async with workflow.client() as client:``. Each method does what the
    ``Workflow`` method of the same name does (see there); nothing runs in the background
    for it, so workers (``run()``, ``conveyor worker``) must be up elsewhere for runs to
    move.
    """

    __slots__ = ("_workflow",)

    def __init__(self, workflow: Workflow[T, S]) -> None:
        self._workflow = workflow

    @property
    def name(self) -> str:
        """The workflow's name."""
        return self._workflow.name

    @property
    def workflow(self) -> Workflow[T, S]:
        """The workflow this client uses."""
        return self._workflow

    async def trigger(
        self, foreign_id: str, *, initial: T | None = None, start_at: S | None = None
    ) -> str:
        """Start a run for ``foreign_id``; returns its run ID (``Workflow.trigger``)."""
        return await self._workflow.trigger(foreign_id, initial=initial, start_at=start_at)

    async def wait(self, foreign_id: str, run_id: str, status: S) -> Run[T, S]:
        """The run once it has reached ``status`` (``Workflow.wait``)."""
        return await self._workflow.wait(foreign_id, run_id, status)

    async def callback(self, foreign_id: str, status: S, payload: bytes = b"") -> Run[T, S]:
        """Hand ``payload`` to the callbacks of ``status`` (``Workflow.callback``)."""
        return await self._workflow.callback(foreign_id, status, payload)

    async def lookup(self, run_id: str) -> Run[T, S]:
        """The current state of a run (``Workflow.lookup``)."""
        return await self._workflow.lookup(run_id)

    async def pause(self, run_id: str, reason: str = "") -> Run[T, S]:
        """Pause a run (``Workflow.pause``)."""
        return await self._workflow.pause(run_id, reason)

    async def resume(self, run_id: str) -> Run[T, S]:
        """Resume a paused run (``Workflow.resume``)."""
        return await self._workflow.resume(run_id)

    async def cancel(self, run_id: str, reason: str = "") -> Run[T, S]:
        """Cancel a run (``Workflow.cancel``)."""
        return await self._workflow.cancel(run_id, reason)

    async def delete_data(self, run_id: str, reason: str = "") -> Run[T, S]:
        """Ask for a finished run's object to be scrubbed (``Workflow.delete_data``)."""
        return await self._workflow.delete_data(run_id, reason)
