"""Redis role leases: the conformance suite, takeover from a dead holder within the
documented bound, a lease that vanishes with its keys (a restart without persistence)
noticed within a renewal period, and spreading roles over live members.

Each scheduler has its own ``RedisClient`` (its own pool), as separate processes would;
all of one test share a key prefix, deleted at the end. Timings are the tests' quick ones
(``FAST_ROLES``: TTL 3 s, a round every 0.25 s, grace 0.5 s). A "dead" holder is a
scheduler whose loop was stopped without releasing anything: its keys are left to expire,
exactly as when its process is killed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack

import pytest
from _redis_support import FAST_ROLES, delete_prefix, new_prefix, open_redis, redis_url

from conveyor._errors import AdapterError
from conveyor.abc import RoleScheduler
from conveyor.adapters.redis import RedisClient, RedisRoleScheduler, open_client
from conveyor.adaptertest import RoleSchedulerSuite, SchedulerFactory, new_name

__all__ = ["redis_url"]

pytestmark = pytest.mark.redis

TTL, RENEW = FAST_ROLES["role_ttl"], FAST_ROLES["role_renew"]
SLACK = 0.5
"""Seconds allowed on top of a bound for the rounds' own time and the event loops' jitter."""


class Schedulers:
    """Schedulers of one test on one key prefix, each with its own client."""

    def __init__(self, url: str, stack: AsyncExitStack) -> None:
        self.url = url
        self.prefix = new_prefix()
        self._stack = stack
        self._first = True

    async def client(self) -> RedisClient:
        cleanup, self._first = self._first, False  # the first one (closed last) cleans up
        return await self._stack.enter_async_context(
            open_redis(self.url, prefix=self.prefix, cleanup=cleanup, **FAST_ROLES)
        )

    async def make(self) -> RedisRoleScheduler:
        scheduler = RedisRoleScheduler(await self.client())
        self._stack.push_async_callback(scheduler.close)
        return scheduler


@pytest.fixture
async def schedulers(redis_url: str) -> AsyncIterator[Schedulers]:
    async with AsyncExitStack() as stack:
        yield Schedulers(redis_url, stack)


class TestRedisRoleScheduler(RoleSchedulerSuite):
    @pytest.fixture
    async def make_schedulers(self, schedulers: Schedulers) -> SchedulerFactory:
        async def make(n: int) -> Sequence[RoleScheduler]:
            return [await schedulers.make() for _ in range(n)]

        return make


async def _kill(scheduler: RedisRoleScheduler) -> None:
    """Stop ``scheduler`` as a killed process would: no release, no leaving."""
    task = scheduler._task
    assert task is not None
    task.cancel()
    await asyncio.wait({task})


async def test_a_dead_holders_role_is_taken_within_ttl_plus_renew(schedulers: Schedulers) -> None:
    # Given a role held by one scheduler and awaited by another
    role = new_name("takeover")
    holder, waiter = await schedulers.make(), await schedulers.make()
    acquired = asyncio.Event()
    release = asyncio.Event()

    async def hold_until_released(scheduler: RedisRoleScheduler) -> None:
        async with scheduler.hold(role):
            acquired.set()
            await release.wait()

    first = asyncio.create_task(hold_until_released(holder))
    async with asyncio.timeout(5):
        await acquired.wait()
    acquired.clear()
    second = asyncio.create_task(hold_until_released(waiter))

    # When the holder dies without releasing
    died = time.monotonic()
    await _kill(holder)

    # Then the waiter holds the role within role_ttl + role_renew of the death
    try:
        async with asyncio.timeout(TTL + RENEW + SLACK):
            await acquired.wait()
        assert time.monotonic() - died <= TTL + RENEW + SLACK
    finally:
        release.set()
        first.cancel()
        await asyncio.wait({first, second}, timeout=5)


async def test_a_lease_whose_key_vanishes_is_lost_within_a_renewal_period(
    schedulers: Schedulers,
) -> None:
    # Given a held role
    scheduler = await schedulers.make()
    client = await schedulers.client()
    role = new_name("restart")

    async with asyncio.timeout(5), scheduler.hold(role) as lease:
        assert not lease.lost()

        # When the prefix's keys vanish (what a restart of a Redis without persistence does)
        assert await delete_prefix(client) >= 1
        gone = time.monotonic()

        # Then the holder's next renewal finds the key gone and the lease reports lost
        async with asyncio.timeout(RENEW + SLACK):
            await lease.wait_lost()
        assert time.monotonic() - gone <= RENEW + SLACK
        assert "lost" in lease.reason


async def test_a_lease_taken_by_another_member_after_a_restart_is_lost_by_the_old_holder(
    schedulers: Schedulers,
) -> None:
    # Given a role held by one scheduler while another waits for it
    holder, waiter = await schedulers.make(), await schedulers.make()
    client = await schedulers.client()
    role = new_name("restart-overlap")
    async with AsyncExitStack() as stack:
        lease = await stack.enter_async_context(holder.hold(role))
        waiting = asyncio.create_task(stack.enter_async_context(waiter.hold(role)))

        # When the keys vanish (a restart without persistence)
        await delete_prefix(client)

        # Then the old holder loses its lease and the waiter gets the role
        async with asyncio.timeout(RENEW + SLACK):
            await lease.wait_lost()
        async with asyncio.timeout(RENEW + SLACK + 2 * FAST_ROLES["role_grace"]):
            new_lease = await waiting
        assert not new_lease.lost()


async def test_roles_spread_over_live_members(schedulers: Schedulers) -> None:
    # Given one scheduler holding six roles
    first = await schedulers.make()
    roles = [new_name(f"spread-{i}") for i in range(6)]
    stop = asyncio.Event()
    holding: dict[str, RedisRoleScheduler] = {}
    changed = asyncio.Condition()

    async def keep(scheduler: RedisRoleScheduler, role: str) -> None:
        while not stop.is_set():
            async with scheduler.hold(role) as lease:
                async with changed:
                    holding[role] = scheduler
                    changed.notify_all()
                lost = asyncio.ensure_future(lease.wait_lost())
                stopped = asyncio.ensure_future(stop.wait())
                await asyncio.wait({lost, stopped}, return_when=asyncio.FIRST_COMPLETED)
                lost.cancel()
                stopped.cancel()
                async with changed:
                    if holding.get(role) is scheduler:
                        del holding[role]
                    changed.notify_all()

    def held_by(scheduler: RedisRoleScheduler) -> int:
        return sum(1 for s in holding.values() if s is scheduler)

    tasks = [asyncio.create_task(keep(first, role)) for role in roles]
    try:
        async with asyncio.timeout(5), changed:
            await changed.wait_for(lambda: len(holding) == 6)

        # When a second member joins and wants the same roles
        second = await schedulers.make()
        tasks += [asyncio.create_task(keep(second, role)) for role in roles]

        # Then each ends up holding three
        async with asyncio.timeout(5 * TTL), changed:
            await changed.wait_for(lambda: held_by(first) == 3 and held_by(second) == 3)
        assert len(first.held_roles()) == 3
        assert not set(first.held_roles()) & set(second.held_roles())
    finally:
        stop.set()
        await asyncio.wait(tasks, timeout=5)
        for task in tasks:
            task.cancel()


def test_options_are_checked_and_the_password_never_shows() -> None:
    with pytest.raises(AdapterError, match="role_renew") as raised:
        open_client("redis://:s3cret@127.0.0.1:6379/0?role_ttl=3&role_renew=2")
    assert "s3cret" not in str(raised.value)
    with pytest.raises(AdapterError, match="unknown") as raised:
        open_client("redis://:s3cret@127.0.0.1:6379/0?nope=1")
    assert "s3cret" not in str(raised.value)
    client = open_client("redis://:s3cret@127.0.0.1:6379/0?key_prefix=wf&role_ttl=10")
    assert client.options.key_prefix == "wf"
    assert client.options.role_ttl == 10
    assert "s3cret" not in repr(client)


async def test_an_unreachable_server_is_adapter_unavailable_without_the_password() -> None:
    from conveyor._errors import AdapterUnavailable

    client = open_client("redis://:s3cret@127.0.0.1:1/0", connect_timeout=1)
    try:
        with pytest.raises(AdapterUnavailable) as raised:
            await client.command("pinging", "PING")
        assert "s3cret" not in str(raised.value)
    finally:
        await client.close()
