"""What the known-wrong cases (``bad_*.py``) share: a document workflow, a second status
enum and a second object type. This module itself must type-check."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from conveyor import Builder, Run, Workflow
from conveyor.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler


class Status(enum.IntEnum):
    UNKNOWN = 0
    DRAFTED = 1
    REVIEWED = 2
    PUBLISHED = 3


class Other(enum.IntEnum):
    UNKNOWN = 0
    STARTED = 1
    DONE = 2


@dataclass
class Doc:
    title: str = ""


@dataclass
class Invoice:
    amount: int = 0


def review(run: Run[Doc, Status]) -> Status:
    return Status.REVIEWED


def builder() -> Builder[Doc, Status]:
    """A builder with one step, from ``DRAFTED`` to ``REVIEWED``."""
    b = Builder("docs", Doc, Status)
    b.add_step(Status.DRAFTED, review, Status.REVIEWED)
    return b


def workflow() -> Workflow[Doc, Status]:
    return builder().build(MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler())
