"""Foreign IDs: one set of limits, checked in one place, that every backend can store."""

from __future__ import annotations

import pytest

import conveyor
from conveyor._ids import MAX_FOREIGN_ID_BYTES, check_foreign_id, invalid_foreign_id

from ._support import Env, Status, parked


@pytest.mark.parametrize(
    "foreign_id",
    [
        pytest.param("", id="empty"),
        pytest.param("order-7", id="ascii"),
        pytest.param("x" * MAX_FOREIGN_ID_BYTES, id="ascii-at-the-limit"),
        pytest.param("€" * (MAX_FOREIGN_ID_BYTES // 3), id="3-byte-characters-under-the-limit"),
        pytest.param("😀" * (MAX_FOREIGN_ID_BYTES // 4), id="4-byte-characters-at-the-limit"),
        pytest.param("tab\tnew\nline", id="control-characters-other-than-nul"),
    ],
)
def test_ids_every_backend_stores_pass_unchanged(foreign_id: str) -> None:
    assert check_foreign_id(foreign_id) is foreign_id
    assert invalid_foreign_id(foreign_id) is None


@pytest.mark.parametrize(
    ("foreign_id", "problem"),
    [
        pytest.param(
            "x" * (MAX_FOREIGN_ID_BYTES + 1),
            "is 1,025 bytes long in UTF-8; at most 1,024 are allowed",
            id="one-byte-too-long",
        ),
        pytest.param(
            "€" * 342,
            "is 1,026 bytes long in UTF-8; at most 1,024 are allowed",
            id="too-long-in-utf8-though-342-characters",
        ),
        pytest.param("a\x00b", "holds a NUL (U+0000 at index 1)", id="nul"),
        pytest.param(
            "\ud800",
            "holds a lone surrogate (U+D800 at index 0), which is not valid Unicode",
            id="lone-high-surrogate",
        ),
        pytest.param(
            "ok-\udfff",
            "holds a lone surrogate (U+DFFF at index 3), which is not valid Unicode",
            id="lone-low-surrogate",
        ),
        pytest.param(7, "must be a str, not int", id="not-a-str"),
        pytest.param(None, "must be a str, not NoneType", id="none"),
    ],
)
def test_ids_no_backend_can_store_raise_invalid_foreign_id(
    foreign_id: object, problem: str
) -> None:
    with pytest.raises(conveyor.InvalidForeignID) as raised:
        check_foreign_id(foreign_id)  # type: ignore[arg-type]
    error = raised.value
    assert error.problem == problem
    assert error.foreign_id == foreign_id
    assert str(error).endswith(f": {problem}")
    found = invalid_foreign_id(foreign_id)
    assert found is not None
    assert found.problem == problem


def test_the_error_is_a_workflow_error_and_a_value_error() -> None:
    assert issubclass(conveyor.InvalidForeignID, conveyor.WorkflowError)
    assert issubclass(conveyor.InvalidForeignID, ValueError)


def test_a_long_id_is_shortened_in_the_message() -> None:
    error = invalid_foreign_id("y" * 5000)
    assert error is not None
    assert len(str(error)) < 200
    assert error.foreign_id == "y" * 5000


async def test_trigger_and_callback_raise_it_through_the_store(env: Env) -> None:
    wf = env.build(parked())
    async with wf:
        with pytest.raises(conveyor.InvalidForeignID, match="lone surrogate"):
            await wf.trigger("\ud800")
        with pytest.raises(conveyor.InvalidForeignID, match="NUL"):
            await wf.callback("a\x00b", Status.STARTED)
    assert env.store.all_records() == []
