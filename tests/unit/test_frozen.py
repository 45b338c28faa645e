"""``fast_init``: the engine's frozen records, events and writes are built by a quicker
``__init__`` that behaves as the one dataclasses generates."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from dataclasses import InitVar, dataclass, field
from datetime import UTC, datetime

import pytest

from conveyor import RunState
from conveyor._event import Event, OutboxEvent
from conveyor._frozen import fast_init
from conveyor._protocols import RecordWrite
from conveyor._record import Meta, Record

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Plain:
    a: int
    b: str = "b"
    c: list[int] = field(default_factory=list)


@fast_init
@dataclass(frozen=True, slots=True)
class Fast:
    a: int
    b: str = "b"
    c: list[int] = field(default_factory=list)


def test_it_takes_the_same_arguments_with_the_same_defaults_as_dataclasses_init() -> None:
    assert dataclasses.astuple(Fast(1)) == dataclasses.astuple(Plain(1))
    assert dataclasses.astuple(Fast(1, "x")) == dataclasses.astuple(Plain(1, "x"))
    assert dataclasses.astuple(Fast(1, c=[2])) == dataclasses.astuple(Plain(1, c=[2]))
    assert dataclasses.astuple(Fast(a=3, b="y")) == dataclasses.astuple(Plain(a=3, b="y"))
    assert list(inspect.signature(Fast).parameters) == ["a", "b", "c"]
    assert inspect.signature(Fast).parameters["b"].default == "b"


def test_a_default_factory_makes_a_new_value_for_each_instance() -> None:
    first, second = Fast(1), Fast(2)
    assert first.c == []
    assert second.c == []
    assert first.c is not second.c


def test_wrong_arguments_are_refused_as_before() -> None:
    with pytest.raises(TypeError):
        Fast()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Fast(1, d=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Fast(1, "b", [], 4)  # type: ignore[call-arg]


def test_the_instances_stay_frozen_and_copy_pickle_and_replace_as_before() -> None:
    fast = Fast(1, "x", [2])
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.a = 2  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(fast)) == fast
    assert copy.copy(fast) == fast
    assert dataclasses.replace(fast, b="z") == Fast(1, "z", [2])


def test_the_engines_types_are_built_the_same_way() -> None:
    meta = Meta(status_description="Started", version=1)
    record = Record("wf", "fid", "run", RunState.INITIATED, 1, b"{}", NOW, NOW)
    assert record.meta == Meta()  # the default factory
    assert record.replace(meta=meta).version == 1
    outbox = OutboxEvent("o1", "wf", "run", 1, {"topic": "t"}, NOW)
    write = RecordWrite(record, outbox)
    assert (write.expected_version, write.previous_run_state) == (0, RunState.UNKNOWN)
    assert Event(7, "fid", 1, {}, NOW).id == 7
    for cls in (Meta, Record, OutboxEvent, RecordWrite, Event):
        assert cls.__init__.__qualname__ == f"{cls.__name__}.__init__"


def test_classes_it_cannot_serve_the_same_way_are_refused() -> None:
    @dataclass(slots=True)
    class NotFrozen:
        a: int

    @dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclass(frozen=True, slots=True)
    class PostInit:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclass(frozen=True, slots=True)
    class WithInitVar:
        a: int
        b: InitVar[int]

    @dataclass(frozen=True, slots=True)
    class KeywordOnly:
        a: int = field(kw_only=True)

    @dataclass(frozen=True, slots=True)
    class NotInInit:
        a: int = field(init=False, default=0)

    for cls in (NotFrozen, NoSlots, PostInit, WithInitVar, KeywordOnly, NotInInit):
        with pytest.raises(TypeError):
            fast_init(cls)
