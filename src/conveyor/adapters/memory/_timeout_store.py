"""Timeouts in memory: the reference ``TimeoutStore``."""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Sequence
from datetime import datetime

from ..._errors import TimeoutNotFound
from ..._kit._signal import Signal
from ..._protocols import TimeoutRecord

__all__ = ["MemoryTimeoutStore"]


class MemoryTimeoutStore:
    """``TimeoutStore`` in memory. IDs count from 1; ``list_valid`` is ``expire_at <= now``."""

    def __init__(self) -> None:
        self._timeouts: dict[int, TimeoutRecord] = {}
        self._keys: dict[tuple[str, str, int, int, int], int] = {}
        self._last_id = 0
        self._inserted: dict[str, Signal] = {}

    async def create(
        self,
        workflow_name: str,
        foreign_id: str,
        run_id: str,
        status: int,
        expire_at: datetime,
        *,
        created_at: datetime,
        record_version: int = 0,
        index: int = 0,
    ) -> int:
        key = (workflow_name, run_id, status, record_version, index)
        existing = self._keys.get(key)
        if existing is not None:
            return existing
        self._last_id += 1
        self._timeouts[self._last_id] = TimeoutRecord(
            id=self._last_id,
            workflow_name=workflow_name,
            foreign_id=foreign_id,
            run_id=run_id,
            status=status,
            expire_at=expire_at,
            created_at=created_at,
            record_version=record_version,
            index=index,
        )
        self._keys[key] = self._last_id
        signal = self._inserted.get(workflow_name)
        if signal is not None:
            signal.fire()
        return self._last_id

    def _get(self, id: int) -> TimeoutRecord:
        try:
            return self._timeouts[id]
        except KeyError:
            raise TimeoutNotFound(f"timeout not found: id={id}") from None

    async def complete(self, id: int) -> None:
        self._timeouts[id] = dataclasses.replace(self._get(id), completed=True)

    async def cancel(self, id: int) -> None:
        t = self._get(id)
        del self._timeouts[id]
        # A cancelled timeout is gone: creating it again makes a new one.
        self._keys.pop((t.workflow_name, t.run_id, t.status, t.record_version, t.index), None)

    async def list(self, workflow_name: str) -> Sequence[TimeoutRecord]:
        return [
            t
            for t in self._timeouts.values()
            if t.workflow_name == workflow_name and not t.completed
        ]

    async def list_valid(
        self, workflow_name: str, status: int, now: datetime
    ) -> Sequence[TimeoutRecord]:
        return [t for t in self._pending(workflow_name, status) if t.expire_at <= now]

    async def next_expiry(self, workflow_name: str, status: int) -> datetime | None:
        return min((t.expire_at for t in self._pending(workflow_name, status)), default=None)

    def _pending(self, workflow_name: str, status: int) -> builtins.list[TimeoutRecord]:
        return [
            t
            for t in self._timeouts.values()
            if t.workflow_name == workflow_name and t.status == status and not t.completed
        ]

    async def wait_for_insert(self, workflow_name: str, timeout: float) -> None:
        signal = self._inserted.get(workflow_name)
        if signal is None:
            signal = self._inserted[workflow_name] = Signal()
        await signal.wait(timeout)

    async def close(self) -> None:
        """Nothing to release: memory adapters hold no connections. Idempotent."""
