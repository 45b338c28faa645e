"""The memory adapters pass the conformance suites (they are the reference)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from conveyor import RoleScheduler
from conveyor.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler
from conveyor.adaptertest import (
    EventStreamerSuite,
    RecordStoreSuite,
    RoleSchedulerSuite,
    SchedulerFactory,
)


class TestMemoryRecordStore(RecordStoreSuite):
    @pytest.fixture
    async def store(self) -> MemoryRecordStore:
        return MemoryRecordStore()


class TestMemoryEventStreamer(EventStreamerSuite):
    @pytest.fixture
    async def streamer(self) -> MemoryEventStreamer:
        return MemoryEventStreamer()


class TestMemoryRoleScheduler(RoleSchedulerSuite):
    @pytest.fixture
    async def make_schedulers(self) -> SchedulerFactory:
        scheduler = MemoryRoleScheduler()  # one per process: every "instance" shares it

        async def make(n: int) -> Sequence[RoleScheduler]:
            return [scheduler] * n

        return make
