"""What the suites expect of the order and the cursors of a partitioned log.

A receiver (or connector consumer) that ``ReadsPartitions`` keeps order and cursors per
partition; any other keeps one of each. These helpers compute, from the partitions a
reader says its events came from, exactly what it must deliver, so one assertion holds
every adapter to its own guarantee: for a reader of one partition they demand the topic's
order, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import TypeVar

from .._capabilities import ReadsPartitions

__all__ = ["assert_in_log_order", "redelivered"]

E = TypeVar("E")


def _partition(reader: object) -> Callable[[object], int]:
    if isinstance(reader, ReadsPartitions):
        return reader.partition
    return lambda _event: 0


def assert_in_log_order(
    reader: object, received: Sequence[E], key: Callable[[E], str], sent: Sequence[str]
) -> None:
    """``received`` holds exactly the events whose keys are ``sent`` (each once), and each
    partition's events come in the order they were sent."""
    keys = [key(e) for e in received]
    assert sorted(keys) == sorted(sent), f"received {keys}, expected {list(sent)}"
    partition = _partition(reader)
    by_partition: dict[int, list[str]] = {}
    for event in received:
        by_partition.setdefault(partition(event), []).append(key(event))
    for part, got in by_partition.items():
        mine = set(got)
        expected = [k for k in sent if k in mine]
        where = f" in partition {part}" if len(by_partition) > 1 else ""
        assert got == expected, f"received {got}{where}, expected {expected} (send order)"


def redelivered(
    reader: object, handed: Sequence[E], key: Callable[[E], str], acked: Collection[str]
) -> list[str]:
    """The keys a reader opened again must deliver under ``Delivery.CURSOR``: in each
    partition, from its first unacknowledged event on (in send order, ``handed`` being
    everything the first reader handed out, in its order)."""
    partition = _partition(reader)
    behind: set[int] = set()
    again: list[str] = []
    for event in handed:
        part = partition(event)
        if part in behind or key(event) not in acked:
            behind.add(part)
            again.append(key(event))
    return again
