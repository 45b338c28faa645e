"""`conveyor check` gates a deployment: a new definition that would strand runs in flight
exits 1 and names them; a compatible one exits 0. A worker warns at start-up about runs
waiting at statuses its graph does not have. On SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _pg_support import pg_url
from click.testing import CliRunner

import conveyor
from conveyor import RunState
from conveyor.cli import cli
from conveyor.cli._worker import _warn_of_stranded_runs

__all__ = ["pg_url"]

# Version 1 of an order workflow: runs wait for their payment at AWAITING_PAYMENT.
# Version 2 drops that status (payment is now a step at PLACED): it strands those runs.
# Version 3 adds a status and a destination: compatible. Version 4 changes the object
# type so that stored objects no longer decode. Version 5 removes PAID's destination
# SHIPPED from its step (PAID -> CANCELLED only) and keeps the callback: a change.
MODULE = """
import dataclasses
import enum

from conveyor import Builder


class Status(enum.IntEnum):
    PLACED = 1
    AWAITING_PAYMENT = 2
    PAID = 3
    SHIPPED = 4
    CANCELLED = 5
    GIFT_WRAPPED = 6


@dataclasses.dataclass
class Order:
    item: str = ""


@dataclasses.dataclass
class StrictOrder:
    item: int = 0


async def place(run):
    return Status.AWAITING_PAYMENT


async def pay(run, payload):
    return Status.PAID


async def ship(run):
    return Status.SHIPPED


async def charge(run):
    return Status.PAID


def _v1(object_type=Order):
    b = Builder("orders", object_type, Status)
    b.add_step(Status.PLACED, place, Status.AWAITING_PAYMENT)
    b.add_callback(Status.AWAITING_PAYMENT, pay, Status.PAID)
    b.add_step(Status.PAID, ship, Status.SHIPPED)
    return b


v1 = _v1()

v2 = Builder("orders", Order, Status)
v2.add_step(Status.PLACED, charge, Status.PAID)
v2.add_step(Status.PAID, ship, Status.SHIPPED)

v3 = _v1()
v3.add_step(Status.SHIPPED, ship, Status.GIFT_WRAPPED)

v4 = _v1(StrictOrder)

v5 = Builder("orders", Order, Status)
v5.add_step(Status.PLACED, place, Status.AWAITING_PAYMENT)
v5.add_callback(Status.AWAITING_PAYMENT, pay, Status.PAID)
v5.add_step(Status.PAID, ship, Status.CANCELLED)
"""


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The workflow module, importable from the working directory (as the CLI imports)."""
    name = f"orders_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'orders.db'}"
    pg_url: str = request.getfixturevalue("pg_url")
    prefix = f"c{uuid.uuid4().hex[:8]}_"
    return f"{pg_url}?table_prefix={prefix}&migrate=true"


def _seed(url: str, module: str, waiting: int) -> list[str]:
    """Run version 1 until ``waiting`` runs wait at AWAITING_PAYMENT; their run IDs."""
    mod: Any = importlib.import_module(module)

    async def go() -> list[str]:
        async with conveyor.connect(url) as backend:
            wf = mod.v1.build(
                backend.streamer,
                backend.record_store,
                backend.role_scheduler,
                timeout_store=backend.timeout_store,
            )
            async with wf:
                run_ids = [await wf.trigger(f"order-{i}") for i in range(waiting)]
                async with asyncio.timeout(30):
                    for i, run_id in enumerate(run_ids):
                        await wf.wait(f"order-{i}", run_id, mod.Status.AWAITING_PAYMENT)
            return run_ids

    return asyncio.run(go())


def invoke(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [*args, "--store", url], catch_exceptions=False)
    return result.exit_code, result.output


def check(url: str, target: str) -> tuple[int, str]:
    return invoke(url, "check", target)


def test_a_definition_that_drops_a_status_with_runs_waiting_exits_1_and_names_them(
    module: str, store_url: str
) -> None:
    # Given three runs of version 1 waiting for their payment
    run_ids = _seed(store_url, module, 3)

    # When version 2, which has no AWAITING_PAYMENT any more, is checked
    code, out = check(store_url, f"{module}:v2")

    # Then the check fails and names the status, the count and the runs
    assert code == 1, out
    assert "STRANDED: 3 runs in flight at AWAITING_PAYMENT (2)" in out, out
    assert "the status is not in the new definition" in out, out
    assert sum(run_id in out for run_id in run_ids) == 3, out
    assert "compared with registered definition version 1" in out, out
    assert "would strand runs in flight" in out, out


def test_a_compatible_definition_exits_0(module: str, store_url: str) -> None:
    _seed(store_url, module, 2)

    code, out = check(store_url, f"{module}:v3")  # a new status and destination only

    assert code == 0, out
    assert "STRANDED" not in out, out
    assert "no run in flight is stranded or changed" in out, out


def test_the_same_definition_exits_0(module: str, store_url: str) -> None:
    _seed(store_url, module, 1)

    code, out = check(store_url, f"{module}:v1")

    assert code == 0, out
    assert "(the same definition)" in out, out


def test_an_object_type_that_cannot_decode_stored_objects_strands_them(
    module: str, store_url: str
) -> None:
    run_ids = _seed(store_url, module, 2)

    code, out = check(store_url, f"{module}:v4")  # item: int, stored as a str

    assert code == 1, out
    assert "new object type cannot decode" in out, out
    assert all(run_id in out for run_id in run_ids), out
    assert "object type Order is now StrictOrder" in out, out


def test_a_destination_removed_from_a_step_is_a_change_not_a_strand(
    module: str, store_url: str
) -> None:
    _seed(store_url, module, 1)

    code, out = check(store_url, f"{module}:v5")

    assert code == 0, out
    assert "changed: the step at PAID can no longer move runs to SHIPPED" in out, out


def test_a_worker_warns_of_runs_waiting_at_statuses_its_graph_does_not_have(
    module: str, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    run_ids = _seed(store_url, module, 2)
    mod: Any = importlib.import_module(module)

    async def start_version_2() -> None:
        async with conveyor.connect(store_url) as backend:
            wf = mod.v2.build(backend.streamer, backend.record_store, backend.role_scheduler)
            await _warn_of_stranded_runs(wf)

    with caplog.at_level(logging.WARNING, logger="conveyor.worker"):
        asyncio.run(start_version_2())

    warnings = [r.getMessage() for r in caplog.records if r.name == "conveyor.worker"]
    assert len(warnings) == 1, warnings
    assert "2 run(s) in flight wait at AWAITING_PAYMENT (2)" in warnings[0]
    assert any(run_id in warnings[0] for run_id in run_ids)


def test_a_worker_of_the_registered_definition_does_not_warn(
    module: str, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    _seed(store_url, module, 1)
    mod: Any = importlib.import_module(module)

    async def start_version_1() -> None:
        async with conveyor.connect(store_url) as backend:
            wf = mod.v1.build(backend.streamer, backend.record_store, backend.role_scheduler)
            await _warn_of_stranded_runs(wf)

    with caplog.at_level(logging.WARNING, logger="conveyor.worker"):
        asyncio.run(start_version_1())

    assert [r for r in caplog.records if r.name == "conveyor.worker"] == []


def test_paused_runs_count_as_in_flight(module: str, store_url: str) -> None:
    run_ids = _seed(store_url, module, 2)
    mod: Any = importlib.import_module(module)

    async def pause_one() -> None:
        async with conveyor.connect(store_url) as backend:
            wf = mod.v1.build(backend.streamer, backend.record_store, backend.role_scheduler)
            run = await wf.pause(run_ids[0], "held for review")
            assert run.run_state is RunState.PAUSED

    asyncio.run(pause_one())

    code, out = check(store_url, f"{module}:v2")

    assert code == 1, out
    assert "STRANDED: 2 runs in flight at AWAITING_PAYMENT" in out, out


def test_stranded_runs_moved_to_a_status_the_new_definition_consumes_run_on(
    module: str, store_url: str
) -> None:
    # Given runs stranded by version 2 (the check fails)
    run_ids = _seed(store_url, module, 3)
    assert check(store_url, f"{module}:v2")[0] == 1

    # When an operator moves them to PLACED, where version 2 has a step
    code, out = invoke(
        store_url, "runs", "move", "--workflow", "orders",
        "--from", "AWAITING_PAYMENT", "--to", "PLACED", "--reason", "payment is a step now",
    )  # fmt: skip

    # Then all three moved, the check passes, and version 2 takes them to SHIPPED
    assert code == 0, out
    assert "moved 3 run(s) from AWAITING_PAYMENT to PLACED" in out, out
    code, out = check(store_url, f"{module}:v2")
    assert code == 0, out
    mod: Any = importlib.import_module(module)

    async def run_version_2() -> None:
        async with conveyor.connect(store_url) as backend:
            wf = mod.v2.build(backend.streamer, backend.record_store, backend.role_scheduler)
            async with wf, asyncio.timeout(30):
                for i, run_id in enumerate(run_ids):
                    run = await wf.wait(f"order-{i}", run_id, mod.Status.SHIPPED)
                    assert run.run_state is RunState.COMPLETED

    asyncio.run(run_version_2())
