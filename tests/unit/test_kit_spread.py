"""``assign_roles``: one algorithm spreads roles over live members, for every adapter.

Fair (equal wants: loads differ by at most one, busy roles spread among themselves first),
stable (nothing moves while membership stays), follows membership (a newcomer takes only
what evens out the load; a leaver's roles are shared out), and the same in every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from conveyor import Builder, duration_timer
from conveyor.abc.kit import assign_roles, is_light_role
from conveyor.adapters.memory import (
    MemoryEventStreamer,
    MemoryLease,
    MemoryRecordStore,
    MemoryRoleScheduler,
    MemoryTimeoutStore,
)

from ._support import WAIT, Doc, Status, to_done, to_middle


async def to_other_end(run: object, now: object) -> Status:
    return Status.OTHER_END


async def nothing(record: object) -> None:
    return None


class Asked(MemoryRoleScheduler):
    """A memory role scheduler that keeps the roles asked for; ``all_asked`` is set once
    ``expect``'s number of them has been."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []
        self.all_asked = asyncio.Event()
        self._expected = 0

    def expect(self, n: int) -> None:
        self._expected = n
        self._check()

    @contextlib.asynccontextmanager
    async def hold(self, role: str) -> AsyncIterator[MemoryLease]:
        self.asked.append(role)
        self._check()
        async with super().hold(role) as lease:
            yield lease

    def _check(self) -> None:
        if self._expected and len(self.asked) >= self._expected:
            self.all_asked.set()


def _roles(n: int) -> list[str]:
    return [f"wf-1-consumer-{i}-of-{n}" for i in range(1, n + 1)]


def _loads(assignment: dict[str, str], members: str) -> list[int]:
    counts = Counter(assignment.values())
    return [counts[m] for m in members]


THREE_STEPS = [
    "bench-1-consumer-1-of-1",
    "bench-2-consumer-1-of-1",
    "bench-3-consumer-1-of-1",
    "bench-delete-consumer",
    "bench-paused-records-retry-consumer",
    "bench-outbox-consumer",
]
"""A three-step workflow's roles: four busy (three steps, the relay), two light."""


def _mixed(rng: random.Random) -> list[str]:
    """Some busy roles and some light ones, in random numbers."""
    busy = [f"wf-{s}-consumer-1-of-1" for s in range(rng.randint(0, 8))]
    light = [f"wf-{s}-timeout-consumer" for s in range(rng.randint(0, 8))]
    return busy + light or ["wf-delete-consumer"]


def _random_wants(
    rng: random.Random, roles: list[str], most_members: int, held: float = 0.0
) -> tuple[str, dict[str, list[str]], dict[str, str]]:
    """Up to ``most_members`` members each wanting a random part of ``roles``, and holders
    for about the ``held`` share of the roles."""
    members = "abcdefg"[: rng.randint(1, most_members)]
    wanted = {m: rng.sample(roles, rng.randint(1, len(roles))) for m in members}
    holders = {r: rng.choice(members) for r in roles if rng.random() < held}
    return members, wanted, holders


@pytest.mark.parametrize("members", ["a", "ab", "abc", "abcd", "abcdefg"])
@pytest.mark.parametrize("n_roles", [1, 2, 5, 12, 31])
def test_with_equal_wants_every_role_is_assigned_and_loads_differ_by_at_most_one(
    members: str, n_roles: int
) -> None:
    roles = _roles(n_roles)
    got = assign_roles({m: roles for m in members})
    assert sorted(got) == sorted(roles)
    loads = _loads(got, members)
    assert max(loads) - min(loads) <= 1


def test_a_role_goes_only_to_a_member_that_wants_it() -> None:
    wanted = {"a": ["x", "y"], "b": ["y", "z"], "c": ["z"]}
    got = assign_roles(wanted)
    assert all(role in wanted[member] for role, member in got.items())
    assert sorted(got) == ["x", "y", "z"]


def test_a_member_that_wants_one_of_anothers_roles_gets_it() -> None:
    # Given one member holding four roles, and a second that wants only one of them
    roles = [f"role-{i}" for i in range(4)]
    holders = dict.fromkeys(roles, "first")

    got = assign_roles({"first": roles, "second": ["role-0"]}, holders)

    # Then the second gets it and the roles only the first wants stay with the first
    assert got == {"role-0": "second", "role-1": "first", "role-2": "first", "role-3": "first"}


def test_neighbouring_shards_go_to_different_members() -> None:
    roles = [*_roles(4), "wf-outbox-consumer"]
    got = assign_roles({"a": roles, "b": roles, "c": roles[:2]})
    loads = _loads(got, "abc")
    assert max(loads) - min(loads) <= 1
    assert len({got[r] for r in roles[:3]}) == 3


@pytest.mark.parametrize("seed", range(20))
def test_the_assignment_stays_as_it_is_while_membership_does_not_change(seed: int) -> None:
    # Given any wants (here random) and the assignment they lead to
    rng = random.Random(seed)
    _, wanted, _ = _random_wants(rng, _roles(rng.randint(1, 20)), 5)
    first = assign_roles(wanted)

    # When the members hold what they were assigned and compute again
    again = assign_roles(wanted, first)

    # Then nothing moves
    assert again == first


@pytest.mark.parametrize("seed", range(20))
def test_no_member_has_two_roles_more_than_another_that_wants_one_of_them(seed: int) -> None:
    # Given any wants and holders (here random)
    rng = random.Random(seed)
    members, wanted, holders = _random_wants(rng, _roles(rng.randint(1, 25)), 6, held=0.7)

    got = assign_roles(wanted, holders)

    # Then no single role could move to even out the load
    load = Counter(got.values())
    for role, member in got.items():
        for other in members:
            if role in wanted[other]:
                assert load[member] - load[other] < 2, (role, member, other)


@pytest.mark.parametrize("seed", range(20))
def test_no_busy_role_and_no_light_role_could_move_to_even_out_the_load(seed: int) -> None:
    # Given any wants and holders of busy and light roles (here random)
    rng = random.Random(seed)
    members, wanted, holders = _random_wants(rng, _mixed(rng), 6, held=0.7)

    got = assign_roles(wanted, holders)

    # Then a busy role could not even out the busy loads, nor a light one the totals
    busy = Counter(m for r, m in got.items() if not is_light_role(r))
    total = Counter(got.values())
    for role, member in got.items():
        load = total if is_light_role(role) else busy
        for other in members:
            if role in wanted[other]:
                assert load[member] - load[other] < 2, (role, member, other)


def test_a_newcomer_takes_only_what_evens_out_the_load() -> None:
    roles = [f"role-{i}" for i in range(12)]
    three = assign_roles({m: roles for m in "abc"})

    four = assign_roles({m: roles for m in "abcd"}, three)

    assert _loads(four, "abcd") == [3, 3, 3, 3]
    moved = [r for r in roles if four[r] != three[r]]
    assert len(moved) == 3
    assert all(four[r] == "d" for r in moved)


def test_a_leavers_roles_are_shared_out_and_the_others_keep_theirs() -> None:
    roles = [f"role-{i}" for i in range(12)]
    four = assign_roles({m: roles for m in "abcd"})

    three = assign_roles({m: roles for m in "abc"}, four)

    assert _loads(three, "abc") == [4, 4, 4]
    assert all(three[r] == four[r] for r in roles if four[r] != "d")


def test_a_holder_keeps_a_single_role_against_a_newcomer() -> None:
    assert assign_roles({"x": ["only"], "y": ["only"]}, {"only": "y"}) == {"only": "y"}
    assert assign_roles({"x": ["only"], "y": ["only"]}, {"only": "x"}) == {"only": "x"}


def test_holders_that_left_or_no_longer_want_the_role_are_ignored() -> None:
    got = assign_roles({"a": ["r"]}, {"r": "gone"})
    assert got == {"r": "a"}
    got = assign_roles({"a": ["r"], "b": ["s"]}, {"r": "b"})
    assert got == {"r": "a", "s": "b"}


def test_no_members_means_no_assignment() -> None:
    assert assign_roles({}) == {}
    assert assign_roles({"a": []}, {"r": "a"}) == {}


def test_the_order_of_the_input_does_not_matter() -> None:
    roles = _roles(7)
    wanted = {"c": roles, "a": list(reversed(roles)), "b": roles[2:]}
    reordered = {m: sorted(wanted[m], reverse=True) for m in sorted(wanted)}
    assert assign_roles(wanted) == assign_roles(reordered)


@pytest.mark.processes
def test_another_interpreter_with_another_hash_seed_computes_the_same() -> None:
    # Given the same input in two processes whose str hashes differ
    wanted = {m: _roles(9) for m in "abcd"}
    code = (
        "import json, sys; from conveyor.abc.kit import assign_roles; "
        "print(json.dumps(assign_roles(json.loads(sys.argv[1]))))"
    )
    outputs = [
        subprocess.run(
            [sys.executable, "-c", code, json.dumps(wanted)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    ]

    # Then both compute the assignment this process computes
    assert [json.loads(out) for out in outputs] == [assign_roles(wanted)] * 2


@pytest.mark.parametrize("seed", range(20))
def test_with_light_roles_too_the_assignment_stays_while_membership_does_not_change(
    seed: int,
) -> None:
    rng = random.Random(seed)
    _, wanted, holders = _random_wants(rng, _mixed(rng), 5, held=0.5)
    first = assign_roles(wanted, holders)

    assert assign_roles(wanted, first) == first


@pytest.mark.parametrize("seed", range(40))
def test_busy_roles_spread_among_themselves_and_light_ones_even_out_the_totals(
    seed: int,
) -> None:
    # Given members with the same wants, some of which held roles before (any of them)
    rng = random.Random(seed)
    roles = _mixed(rng)
    members = [f"member-{rng.getrandbits(32):08x}" for _ in range(rng.randint(2, 4))]
    holders = {r: rng.choice(members) for r in roles if rng.random() < 0.7}

    got = assign_roles({m: roles for m in members}, holders)

    # Then the busy roles differ by at most one between members, and so do the totals
    busy = Counter(m for r, m in got.items() if not is_light_role(r))
    total = Counter(got.values())
    assert max(busy[m] for m in members) - min(busy[m] for m in members) <= 1
    assert max(total[m] for m in members) - min(total[m] for m in members) <= 1


@pytest.mark.parametrize("seed", range(30))
def test_a_second_process_of_a_three_step_workflow_takes_two_busy_roles(seed: int) -> None:
    # Given one process holding every role of a workflow with three steps and a relay
    # (member names are random per process, so this is any pair of names)
    rng = random.Random(seed)
    first, second = (f"proc-{rng.getrandbits(48):012x}" for _ in range(2))
    holders = dict.fromkeys(THREE_STEPS, first)

    # When a second process of it joins
    got = assign_roles({first: THREE_STEPS, second: THREE_STEPS}, holders)

    # Then each runs two of the four busy roles and one light one: never all three
    # steps on one side while the other holds what has little to do
    for member in (first, second):
        mine = [r for r, m in got.items() if m == member]
        assert sorted(map(is_light_role, mine)) == [False, False, True], mine


def test_light_roles_even_out_the_totals_where_busy_ones_cannot() -> None:
    # Given one member holding every role, three busy ones only it wants
    busy = [f"wf-{s}-consumer-1-of-1" for s in range(3)]
    light = [f"wf-{s}-timeout-consumer" for s in range(5)]
    holders = dict.fromkeys(busy + light, "a")

    got = assign_roles({"a": busy + light, "b": light}, holders)

    # Then the other takes light roles until the totals are even
    assert Counter(got.values()) == {"a": 4, "b": 4}
    assert all(got[r] == "a" for r in busy)


def test_the_engines_housekeeping_roles_are_the_light_ones() -> None:
    assert not is_light_role("orders-2-consumer-1-of-3")
    assert not is_light_role("orders-outbox-consumer")
    assert not is_light_role("orders-2-timeout-auto-inserter-consumer")
    assert not is_light_role("orders-completed-run-state-change-hook-consumer")
    assert not is_light_role("payments-connector-to-orders-consumer-1-of-1")
    assert is_light_role("orders-delete-consumer")
    assert is_light_role("orders-paused-records-retry-consumer")
    assert is_light_role("orders-2-timeout-consumer")
    assert is_light_role("orders-andrew-scheduler-@every_1m")


async def test_a_running_workflow_asks_for_light_roles_only_for_its_housekeeping() -> None:
    # Given a workflow with a sharded step, a timeout, a hook and a schedule
    b = Builder("orders", Doc, Status)
    b.add_step(Status.STARTED, to_middle, Status.MIDDLE)
    b.add_step(Status.MIDDLE, to_done, Status.DONE).with_options(parallel_count=2)
    b.add_timeout(Status.MIDDLE, duration_timer(60), to_other_end, Status.OTHER_END)
    b.on_complete(nothing)
    roles = Asked()
    timeouts = MemoryTimeoutStore()
    wf = b.build(MemoryEventStreamer(), MemoryRecordStore(), roles, timeout_store=timeouts)

    # When it runs
    async with wf:
        schedule = asyncio.create_task(wf.schedule("andrew", "@every 1m"))
        roles.expect(len(wf.process_names()) + 1)
        async with asyncio.timeout(WAIT):
            await roles.all_asked.wait()
        held = roles.asked
        schedule.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await schedule

    # Then the roles it asked for are light exactly for the housekeeping processes
    light = sorted(r for r in held if is_light_role(r))
    assert light == [
        "orders-2-timeout-consumer",
        "orders-andrew-scheduler-@every_1m",
        "orders-delete-consumer",
        "orders-paused-records-retry-consumer",
    ]
    assert len(held) - len(light) == 6  # outbox, 1 + 2 step shards, inserter, hook
