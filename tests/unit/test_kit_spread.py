"""``assign_roles``: one algorithm spreads roles over live members, for every adapter.

Fair (equal wants: loads differ by at most one), stable (nothing moves while membership
stays), follows membership (a newcomer takes only what evens out the load; a leaver's
roles are shared out), and the same in every process.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter

import pytest

from conveyor.abc.kit import assign_roles


def _roles(n: int) -> list[str]:
    return [f"wf-1-consumer-{i}-of-{n}" for i in range(1, n + 1)]


def _loads(assignment: dict[str, str], members: str) -> list[int]:
    counts = Counter(assignment.values())
    return [counts[m] for m in members]


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
    roles = _roles(rng.randint(1, 20))
    members = "abcde"[: rng.randint(1, 5)]
    wanted = {m: rng.sample(roles, rng.randint(1, len(roles))) for m in members}
    first = assign_roles(wanted)

    # When the members hold what they were assigned and compute again
    again = assign_roles(wanted, first)

    # Then nothing moves
    assert again == first


@pytest.mark.parametrize("seed", range(20))
def test_no_member_has_two_roles_more_than_another_that_wants_one_of_them(seed: int) -> None:
    # Given any wants and holders (here random)
    rng = random.Random(seed)
    roles = _roles(rng.randint(1, 25))
    members = "abcdef"[: rng.randint(1, 6)]
    wanted = {m: rng.sample(roles, rng.randint(1, len(roles))) for m in members}
    holders = {r: rng.choice(members) for r in roles if rng.random() < 0.7}

    got = assign_roles(wanted, holders)

    # Then no single role could move to even out the load
    load = Counter(got.values())
    for role, member in got.items():
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
