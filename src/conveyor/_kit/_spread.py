"""``assign_roles``: which live member should hold each role, computed alike everywhere.

Role schedulers that spread roles over processes (SQLite, PostgreSQL, MySQL, Redis, NATS)
let every member compute the same assignment from the same input, the live members with
the roles each wants and the current holders, and then act on its own part: take the free
roles assigned to it, hand over the roles it holds that are assigned to another. How fast a
member takes a role that is assigned elsewhere, or gives one up, is the scheduler's policy;
the assignment is this module's.

Two kinds of role. Most roles do work for every event of their topic (step consumers,
connectors, hooks, the outbox relay, timeout inserters): *busy*. A few do little whatever
the traffic (``light``): the delete consumer, the paused-records retry consumer (it reads
every run-state change but handles only pauses, after a long lag), timeout pollers and
schedules; the engine's role names say which (``*-delete-consumer``,
``*-paused-records-retry-consumer``, ``*-timeout-consumer``, ``*-scheduler-*``). Busy roles
are spread first, among themselves; light roles then even out each member's total. So two
processes of a workflow with three steps and two light roles each run one or two steps,
never one all three while the other holds the light roles.

The rules, for the busy roles (counting busy roles only), then for the light ones
(counting every role a member has, but moving only light roles):

1. *Holders keep their roles.* Every role held by a member that still wants it starts
   with that member, so a holder is never asked to give a role up unless that evens out
   the load.
2. *Free roles go to the least loaded.* The other roles, in name order, each go to the
   member that wants it with the fewest roles so far (ties: FNV-1a of role and member,
   then the member's name). Name order puts the shards of one consumer (neighbours in
   name order) on different members.
3. *Then the load is evened out.* While some member has at least two roles more than
   another member that wants one of them, that role moves over (from the most loaded
   member first, to the least loaded taker; which of the giver's roles goes is decided
   by FNV-1a of role and taker, so a consumer's shards do not all move together). With
   equal wants the busy loads end up differing by at most one, and so do the totals.

So the assignment is a fixed point: computed again with its own result as the holders,
nothing moves (stable while membership stays the same), and a member that joins takes
over only what evens out the load. Only sorted orders and ``fnv1a64`` decide, never
``hash()`` or the order of the input mappings, so every process computes the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ._hash import fnv1a64

__all__ = ["assign_roles", "is_light_role"]

_LIGHT_SUFFIXES = ("-delete-consumer", "-paused-records-retry-consumer", "-timeout-consumer")


def is_light_role(role: str) -> bool:
    """Whether ``role`` is one of the engine's light roles (module docstring)."""
    return role.endswith(_LIGHT_SUFFIXES) or "-scheduler-" in role


def assign_roles(
    wanted: Mapping[str, Iterable[str]], holders: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Role -> member, for every role some member in ``wanted`` wants (module docstring).

    Args:
        wanted: Each live member's roles (the ones it waits for or holds).
        holders: Role -> the member holding it now; holders that are not in ``wanted``
            (or no longer want the role) are ignored.
    """
    holders = holders or {}
    candidates: dict[str, list[str]] = {}
    for member in sorted(wanted):
        for role in set(wanted[member]):
            candidates.setdefault(role, []).append(member)
    busy = sorted(role for role in candidates if not is_light_role(role))
    light = sorted(role for role in candidates if is_light_role(role))
    result: dict[str, str] = {}
    every: dict[str, set[str]] = {member: set() for member in wanted}
    # Busy roles are counted and moved among themselves ...
    _spread(busy, candidates, holders, result, {member: set() for member in wanted}, every)
    # ... then light ones even out the totals (what a member has counts, light moves).
    _spread(light, candidates, holders, result, every, every)
    return result


def _spread(
    roles: list[str],
    candidates: Mapping[str, list[str]],
    holders: Mapping[str, str],
    result: dict[str, str],
    load: dict[str, set[str]],
    every: dict[str, set[str]],
) -> None:
    """Rules 1-3 for ``roles`` (name-sorted): ``load`` is what each member's load counts
    (it may hold roles spread before, which stay); ``every`` collects each member's roles."""
    movable: dict[str, set[str]] = {member: set() for member in load}
    free: list[str] = []

    def give(role: str, member: str) -> None:
        result[role] = member
        load[member].add(role)
        movable[member].add(role)
        every[member].add(role)

    for role in roles:
        holder = holders.get(role)
        if holder is not None and holder in load and holder in candidates[role]:
            give(role, holder)
        else:
            free.append(role)
    for role in free:
        give(role, min(candidates[role], key=lambda m: (len(load[m]), _tie(role, m))))
    while (move := _next_move(candidates, load, movable)) is not None:
        role, giver, taker = move
        for roles_of in (load, movable, every):
            roles_of[giver].discard(role)
        give(role, taker)


def _tie(role: str, member: str) -> tuple[int, str]:
    return fnv1a64(f"{role}\x00{member}"), member


def _next_move(
    candidates: Mapping[str, list[str]],
    load: Mapping[str, set[str]],
    movable: Mapping[str, set[str]],
) -> tuple[str, str, str] | None:
    """A role (of ``movable``) that can go from a member to one wanting it with two or
    more fewer roles (counted in ``load``)."""
    lightest = min((len(roles) for roles in load.values()), default=0)
    for giver in sorted(load, key=lambda m: (-len(load[m]), m)):
        count = len(load[giver])
        if count - lightest < 2:
            return None  # nobody (this one or a lighter one) can give without a swap back
        moves = []
        for role in movable[giver]:
            takers = [m for m in candidates[role] if len(load[m]) <= count - 2]
            if takers:
                taker = min(takers, key=lambda m: (len(load[m]), _tie(role, m)))
                moves.append((len(load[taker]), _tie(role, taker), role, taker))
        if moves:
            _, _, role, taker = min(moves)
            return role, giver, taker
    return None
