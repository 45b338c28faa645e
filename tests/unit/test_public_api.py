"""The public surface: what ``__all__`` promises is there, sorted, and nothing else is needed."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import conveyor

CORE_PUBLIC = ("conveyor", "conveyor.abc", "conveyor.testing", "conveyor.adapters.memory")


def public_modules() -> list[str]:
    """Every importable module of the package with no ``_``-prefixed part in its name."""
    names = ["conveyor"]
    for info in pkgutil.walk_packages(conveyor.__path__, "conveyor.", onerror=lambda _: None):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        names.append(info.name)
    return sorted(names)


def load(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:  # an adapter whose optional driver is not installed
        pytest.skip(f"{name}: {exc}")


@pytest.mark.parametrize("name", CORE_PUBLIC)
def test_core_modules_export_a_sorted_tuple(name: str) -> None:
    module = load(name)
    exported = module.__dict__.get("__all__")
    assert isinstance(exported, tuple), f"{name}.__all__ must be a tuple"
    assert list(exported) == sorted(exported)
    assert len(set(exported)) == len(exported)


@pytest.mark.parametrize("name", [m for m in public_modules() if m != "conveyor.adapters"])
def test_every_public_module_has_a_sorted_all_of_importable_names(name: str) -> None:
    module = load(name)
    exported = module.__dict__.get("__all__")
    assert exported is not None, f"{name} has no __all__"
    assert list(exported) == sorted(exported)
    for attr in exported:
        assert hasattr(module, attr), f"{name}.{attr} is in __all__ but missing"


def test_everything_in_conveyor_all_imports_from_the_top_level() -> None:
    namespace: dict[str, object] = {}
    exec(f"from conveyor import {', '.join(conveyor.__all__)}", namespace)
    for name in conveyor.__all__:
        assert namespace[name] is getattr(conveyor, name)


def test_the_names_the_spec_promises_are_public() -> None:
    promised = {
        "Builder",
        "Run",
        "RunState",
        "Options",
        "OutboxOptions",
        "Workflow",
        "WorkflowError",
        "RecordNotFound",
        "TimeoutNotFound",
        "WorkflowInProgress",
        "OutboxRecordNotFound",
        "InvalidTransition",
        "NotRunning",
        "VersionConflict",
        "RunEnded",
        "AdapterError",
        "BuildError",
    }
    assert promised <= set(conveyor.__all__)
    import conveyor.testing as testing

    assert {
        "FakeClock",
        "require",
        "wait_for",
        "trigger_callback_on",
        "new_testing_run",
        "run_until_idle",
    } <= set(testing.__all__)


def test_errors_share_one_root_and_lookup_errors_are_lookup_errors() -> None:
    errors = [
        getattr(conveyor, n)
        for n in conveyor.__all__
        if isinstance(getattr(conveyor, n), type) and issubclass(getattr(conveyor, n), Exception)
    ]
    assert len(errors) >= 10
    assert all(issubclass(e, conveyor.WorkflowError) for e in errors)
    for name in ("RecordNotFound", "TimeoutNotFound", "OutboxRecordNotFound"):
        assert issubclass(getattr(conveyor, name), LookupError)


@pytest.mark.parametrize("name", CORE_PUBLIC)
def test_public_classes_and_functions_have_docstrings(name: str) -> None:
    module = load(name)
    for attr in module.__all__:
        obj = getattr(module, attr)
        if isinstance(obj, type) or inspect.isfunction(obj):
            assert obj.__doc__, f"{name}.{attr} has no docstring"


WORKFLOW_AUTHORS = (
    "AdapterError",
    "AdapterUnavailable",
    "Backend",
    "BuildError",
    "Builder",
    "CallbackFn",
    "CallbackRejected",
    "CallbackRejection",
    "Cancel",
    "Clock",
    "ConnectorBuilder",
    "ConnectorEvent",
    "DecodeError",
    "Definition",
    "DeleteFn",
    "HookFn",
    "InvalidForeignID",
    "InvalidObject",
    "InvalidSchedule",
    "InvalidTransition",
    "Logger",
    "Marker",
    "Meta",
    "MixedBackend",
    "NotRunning",
    "Options",
    "OutboxOptions",
    "OutboxRecordNotFound",
    "Pause",
    "Record",
    "RecordNotFound",
    "Run",
    "RunEnded",
    "RunState",
    "RunStateController",
    "SaveAndRepeat",
    "Skip",
    "State",
    "StepBuilder",
    "StepFn",
    "StepResult",
    "SystemClock",
    "TimeoutBuilder",
    "TimeoutFn",
    "TimeoutNotFound",
    "TimerFn",
    "TypedRecord",
    "VersionConflict",
    "Workflow",
    "WorkflowClient",
    "WorkflowError",
    "WorkflowInProgress",
    "connect",
    "duration_timer",
    "migrate",
    "time_timer",
)
"""``conveyor``: what workflow authors use (issue 9). Changing it is a decision: say why."""

ADAPTER_AUTHORS = (
    "AdapterError",
    "AdapterUnavailable",
    "AppliedMigration",
    "Clock",
    "ConnectorConstructor",
    "ConnectorConsumer",
    "ConnectorEvent",
    "DefinitionRecord",
    "Delivery",
    "Event",
    "EventReceiver",
    "EventSender",
    "EventStreamer",
    "Failure",
    "Header",
    "HistoryEntry",
    "KeepsDefinitions",
    "KeepsHistory",
    "KeepsSnapshots",
    "Lease",
    "ListsRuns",
    "Meta",
    "MigrationReport",
    "NotifiesChanges",
    "Order",
    "OutboxEvent",
    "OutgoingEvent",
    "Parts",
    "PinsEventLocation",
    "PublishesEvents",
    "ReadsPartitions",
    "Record",
    "RecordFilter",
    "RecordNotFound",
    "RecordStore",
    "RecordWrite",
    "RecordsFailures",
    "ReportsOutbox",
    "ReportsPending",
    "RoleScheduler",
    "RunPage",
    "RunQuery",
    "RunState",
    "Tail",
    "TailBatch",
    "TailsTopics",
    "TimeoutNotFound",
    "TimeoutRecord",
    "TimeoutStore",
    "VersionConflict",
    "WorkflowError",
    "WorkflowInProgress",
    "delete_topic",
    "make_role",
    "register_backend",
    "register_parts",
    "run_state_change_topic",
    "topic",
    "topic_for",
)
"""``conveyor.abc``: the contracts, wire types, helpers and capabilities for adapter authors."""


def test_conveyor_exports_exactly_what_workflow_authors_use() -> None:
    assert conveyor.__all__ == WORKFLOW_AUTHORS


def test_conveyor_abc_exports_exactly_what_adapter_authors_use() -> None:
    import conveyor.abc

    assert conveyor.abc.__all__ == ADAPTER_AUTHORS


def test_adapter_plumbing_is_not_in_the_authors_namespace() -> None:
    for name in ("Event", "EventStreamer", "RecordWrite", "Lease", "Header", "topic", "make_role"):
        assert name not in conveyor.__all__
        assert not hasattr(conveyor, name), f"conveyor.{name} should live in conveyor.abc only"


def test_decode_error_is_a_workflow_error_and_a_value_error() -> None:
    assert issubclass(conveyor.DecodeError, conveyor.WorkflowError)
    assert issubclass(conveyor.DecodeError, ValueError)
