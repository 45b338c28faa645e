"""``assign_roles``: which live member should hold each role, computed alike everywhere.

Role schedulers that spread roles over processes (SQLite, PostgreSQL; next Redis and
MySQL) let every member compute the same assignment from the same input, the live
members with the roles each wants and the current holders, and then act on its own part:
take the free roles assigned to it, hand over the roles it holds that are assigned to
another. How fast a member takes a role that is assigned elsewhere, or gives one up, is
the scheduler's policy; the assignment is this module's.

The rules, in order:

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
   equal wants the loads end up differing by at most one.

So the assignment is a fixed point: computed again with its own result as the holders,
nothing moves (stable while membership stays the same), and a member that joins takes
over only what evens out the load. Only sorted orders and ``fnv1a64`` decide, never
``hash()`` or the order of the input mappings, so every process computes the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ._hash import fnv1a64

__all__ = ["assign_roles"]


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
    result: dict[str, str] = {}
    mine: dict[str, set[str]] = {member: set() for member in wanted}
    free: list[str] = []
    for role in sorted(candidates):
        holder = holders.get(role)
        if holder is not None and holder in mine and holder in candidates[role]:
            result[role] = holder
            mine[holder].add(role)
        else:
            free.append(role)
    for role in free:
        best = min(candidates[role], key=lambda m: (len(mine[m]), _tie(role, m)))
        result[role] = best
        mine[best].add(role)
    while (move := _next_move(candidates, mine)) is not None:
        role, giver, taker = move
        mine[giver].discard(role)
        mine[taker].add(role)
        result[role] = taker
    return result


def _tie(role: str, member: str) -> tuple[int, str]:
    return fnv1a64(f"{role}\x00{member}"), member


def _next_move(
    candidates: Mapping[str, list[str]], mine: Mapping[str, set[str]]
) -> tuple[str, str, str] | None:
    """A role that can go from a member to one wanting it with two or more fewer roles."""
    lightest = min((len(roles) for roles in mine.values()), default=0)
    for giver in sorted(mine, key=lambda m: (-len(mine[m]), m)):
        load = len(mine[giver])
        if load - lightest < 2:
            return None  # nobody (this one or a lighter one) can give without a swap back
        moves = []
        for role in mine[giver]:
            takers = [m for m in candidates[role] if len(mine[m]) <= load - 2]
            if takers:
                taker = min(takers, key=lambda m: (len(mine[m]), _tie(role, m)))
                moves.append((len(mine[taker]), _tie(role, taker), role, taker))
        if moves:
            _, _, role, taker = min(moves)
            return role, giver, taker
    return None
