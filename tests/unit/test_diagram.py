"""Mermaid diagrams of workflows, checked against a golden file."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any, cast

import pytest

from conveyor import Builder, Run
from conveyor.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler
from conveyor.diagram import mermaid, status_label, write_diagram

GOLDEN = Path(__file__).parent / "golden" / "order_diagram.md"


class OrderStatus(enum.IntEnum):
    UNKNOWN = 0
    PLACED = 9
    PAYMENT_PENDING = 10
    SHIPPED = 11
    CANCELLED = 12


async def step(run: Run[dict[str, object], OrderStatus]) -> OrderStatus:
    return OrderStatus.SHIPPED


def order_builder() -> Builder[dict[str, object], OrderStatus]:
    b = Builder("order fulfilment", dict, OrderStatus)
    b.add_step(OrderStatus.PLACED, step, OrderStatus.PAYMENT_PENDING, OrderStatus.CANCELLED)
    b.add_callback(OrderStatus.PAYMENT_PENDING, lambda run, p: run.skip(), OrderStatus.SHIPPED)
    return b


def test_diagram_matches_the_golden_file() -> None:
    assert mermaid(order_builder()) == GOLDEN.read_text()


def test_a_built_workflow_draws_the_same_diagram() -> None:
    wf = order_builder().build(MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler())
    assert mermaid(wf) == GOLDEN.read_text()


def test_direction_is_configurable_and_checked() -> None:
    assert "\tdirection TB\n" in mermaid(order_builder(), "TB")
    with pytest.raises(ValueError, match="direction"):
        mermaid(order_builder(), "XY")  # type: ignore[arg-type]


def test_write_diagram_creates_parent_directories(tmp_path: Path) -> None:
    path = write_diagram(order_builder(), tmp_path / "docs" / "diagrams" / "order.md")
    assert path.read_text() == GOLDEN.read_text()


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("EMAIL_SET", "Email set"),
        ("EmailSet", "Email set"),
        ("DONE", "Done"),
        ("V2Ready", "V 2 ready"),
    ],
)
def test_status_labels_are_words(name: str, label: str) -> None:
    status = enum.IntEnum("S", [(name, 1)])  # type: ignore[misc]
    assert status_label(status(1)) == label


def test_drawing_something_else_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="Workflow or Builder"):
        mermaid(cast(Any, object()))
