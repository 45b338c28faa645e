"""A running workflow (worker or client) registers its definition with a store that keeps
them, so tools with only the store's URL can show names and graphs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from conveyor import AdapterError, Builder
from conveyor.abc import DefinitionRecord, KeepsDefinitions
from conveyor.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler

from ._support import Doc, Status, linear, never_called


class Registering(MemoryRecordStore):
    """A memory store that records what was registered (the simplest KeepsDefinitions)."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.registered: list[tuple[str, str, str]] = []
        self.fail = fail

    async def register_definition(
        self, workflow_name: str, hash: str, document: str, at: datetime
    ) -> DefinitionRecord:
        if self.fail:
            raise AdapterError("the store is read-only")
        self.registered.append((workflow_name, hash, document))
        return DefinitionRecord(workflow_name, len(self.registered), hash, document, at)

    async def definitions(self) -> Sequence[DefinitionRecord]:
        return []

    async def definition_versions(self, workflow_name: str) -> Sequence[DefinitionRecord]:
        return []


class Log:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def debug(self, msg: str, **meta: object) -> None: ...

    def error(self, msg: str, exc: BaseException | None = None, **meta: object) -> None:
        self.errors.append(f"{msg}: {exc}")


async def test_run_and_client_register_the_definition_document() -> None:
    store = Registering()
    assert isinstance(store, KeepsDefinitions)
    b = linear("orders")
    b.add_callback(Status.MIDDLE, never_called, Status.OTHER_END)
    wf = b.build(MemoryEventStreamer(), store, MemoryRoleScheduler())
    async with wf:
        pass
    async with wf.client():
        pass
    assert len(store.registered) == 2
    (name, digest, document), again = store.registered
    assert again == (name, digest, document)  # the same definition hashes the same
    assert name == "orders"
    doc = json.loads(document)
    assert doc["statuses"]["1"] == "STARTED"
    assert doc["edges"] == [[1, 2], [2, 3], [2, 4]]
    assert (doc["starting"], doc["terminal"]) == ([1], [3, 4])
    assert (doc["steps"], doc["callbacks"]) == ([1, 2], [2])
    assert document == json.dumps(doc, sort_keys=True, separators=(",", ":"))


async def test_a_changed_definition_hashes_differently() -> None:
    store = Registering()
    first = linear("orders").build(MemoryEventStreamer(), store, MemoryRoleScheduler())
    changed = Builder("orders", Doc, Status)
    changed.add_callback(Status.STARTED, never_called, Status.DONE)
    second = changed.build(MemoryEventStreamer(), store, MemoryRoleScheduler())
    async with first.client(), second.client():
        pass
    assert store.registered[0][1] != store.registered[1][1]


async def test_a_store_that_refuses_the_registration_is_logged_and_the_workflow_runs() -> None:
    store, log = Registering(fail=True), Log()
    wf = linear("orders").build(MemoryEventStreamer(), store, MemoryRoleScheduler(), logger=log)
    async with wf:
        await wf.trigger("fid")
    assert log.errors == ["could not register the workflow's definition: the store is read-only"]
