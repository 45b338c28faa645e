"""The NATS key-value role scheduler: the conformance suite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest
from _nats_support import delete_prefix, nats_url, new_prefix, with_options

from conveyor.abc import RoleScheduler
from conveyor.adapters.nats import NatsRoleScheduler
from conveyor.adaptertest import RoleSchedulerSuite, SchedulerFactory

__all__ = ["nats_url"]

pytestmark = pytest.mark.nats

FAST_ROLES = {"role_ttl": 3, "role_renew": 0.25, "role_grace": 0.5}


class TestNatsRoleScheduler(RoleSchedulerSuite):
    @pytest.fixture
    async def make_schedulers(self, nats_url: str) -> AsyncIterator[SchedulerFactory]:
        prefix = new_prefix("r")
        url = with_options(nats_url, prefix=prefix, **FAST_ROLES)
        made: list[NatsRoleScheduler] = []

        async def make(n: int) -> Sequence[RoleScheduler]:
            made.extend(NatsRoleScheduler(url) for _ in range(n))  # a connection each
            return made[-n:]

        try:
            yield make
        finally:
            for scheduler in made:
                await scheduler.close()
            await delete_prefix(nats_url, prefix)
