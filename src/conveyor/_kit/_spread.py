"""``assign_roles``: which live member should hold each role, computed alike everywhere.

Role schedulers that spread roles over processes (SQLite, PostgreSQL; next Redis and
MySQL) let every member compute the same assignment from the same input, the live
members with the roles each wants and the current holders, and then act on its own part:
take the free roles assigned to it, hand over the roles it holds that are assigned to
another. How fast a member takes a role that is assigned elsewhere, or gives one up, is
the scheduler's policy; the assignment is this module's.

The rules, in order:

1. *Stability.* Every current holder keeps up to its fair share (``roles // members``)
   of the roles it holds and still wants, the roles only it wants first. So when
   membership does not change, neither does the assignment, and a member that joins
   takes over only what evens out the load.
2. *Balance.* The other roles, in name order, each go to the member that wants it with
   the least load, counting the roles still to assign that only that member wants
   (ties: the holder, then FNV-1a of role and member, then the member's name). With
   equal wants the loads differ by at most one; name order puts the shards of one
   consumer (neighbours in name order) on different members.
3. *Determinism.* Only sorted orders and ``fnv1a64`` decide, never ``hash()`` or the
   order of the input mappings, so every process computes the same.
"""

from __future__ import annotations

from collections import Counter
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
    roles = sorted(candidates)
    fair = len(roles) // max(1, len(wanted))
    load = dict.fromkeys(wanted, 0)
    result: dict[str, str] = {}
    for role in sorted(roles, key=lambda r: (len(candidates[r]), r)):
        holder = holders.get(role)
        if holder is not None and holder in candidates[role] and load[holder] < fair:
            result[role] = holder
            load[holder] += 1
    # Roles still to assign that only one member wants: they will land on it anyway.
    forced = Counter(candidates[r][0] for r in roles if r not in result and len(candidates[r]) == 1)
    for role in roles:
        if role in result:
            continue
        members = candidates[role]
        if len(members) == 1:
            forced[members[0]] -= 1
        holder = holders.get(role)
        best = min(
            members,
            key=lambda m: (load[m] + forced[m], m != holder, fnv1a64(f"{role}\x00{m}"), m),
        )
        result[role] = best
        load[best] += 1
    return result
