"""What deploying a new definition of a workflow would do to the runs in flight.

``check_upgrade`` compares a workflow's definition (the code about to be deployed) with the
one its store registered (``KeepsDefinitions``: every running workflow registers its own)
and counts, with ``ListsRuns``, the runs in flight (Initiated, Running or Paused) that the
change reaches:

- **stranded** runs wait at a status the new definition no longer moves them from: the
  status is gone from the graph, or nothing consumes it any more (no step, callback or
  timeout). No consumer ever reads such a run again, silently;
- runs whose stored object the new object type fails to decode (a sample is tried):
  every attempt on them would fail;
- **changes** that do not strand runs but alter what happens to them: a step that can no
  longer move runs to a destination (the step function returning it fails), a callback or
  a timeout removed, a step removed while a callback or timeout remains, a renamed object
  type.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ._capabilities import KeepsDefinitions, ListsRuns, RunQuery
from ._codec import Codec
from ._definition import Definition
from ._errors import DecodeError
from ._protocols import RecordStore
from ._registry import definition_document
from ._runstate import RunState

__all__ = ["Change", "IN_FLIGHT", "Stranded", "UpgradeCheck", "check_upgrade", "stranded_at_start"]

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)

IN_FLIGHT = (RunState.INITIATED, RunState.RUNNING, RunState.PAUSED)
"""The run states of runs that still move (or will, once resumed)."""

COUNT_CAP = 10_000
"""Runs counted per status at most (a count of 10,000 reads "10,000 or more")."""


@dataclass(frozen=True, slots=True)
class Stranded:
    """Runs in flight at a status the new definition never moves them from."""

    status: int
    name: str
    count: int
    sample_run_ids: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Change:
    """A difference that alters what happens to runs in flight, without stranding them."""

    what: str
    runs: int
    """Runs in flight it reaches (at the status concerned; 0 when none is concerned)."""


@dataclass(frozen=True, slots=True)
class UpgradeCheck:
    """What ``check_upgrade`` found for one workflow."""

    workflow_name: str
    registered_version: int | None
    """The store's latest registered definition it was compared with (``None``: none)."""
    same_definition: bool
    stranded: tuple[Stranded, ...] = ()
    undecodable: tuple[str, ...] = ()
    """Sampled runs in flight whose object the new object type fails to decode."""
    decode_error: str = ""
    changes: tuple[Change, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def strands_runs(self) -> bool:
        """Whether deploying would leave runs that never move again, or cannot decode."""
        return bool(self.stranded or self.undecodable)


def _document(definition: Definition[Any, Any]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(definition_document(definition))
    return parsed


def _consumed(document: Mapping[str, Any]) -> set[int]:
    return {int(s) for kind in ("steps", "callbacks", "timeouts") for s in document.get(kind, ())}


def _names(document: Mapping[str, Any]) -> dict[int, str]:
    return {int(number): str(name) for number, name in document.get("statuses", {}).items()}


async def _in_flight(
    store: ListsRuns, workflow: str, status: int, samples: int
) -> tuple[int, tuple[str, ...]]:
    query = RunQuery(workflow_name=workflow, statuses=(status,), run_states=IN_FLIGHT)
    count = await store.count_runs(query, cap=COUNT_CAP)
    if count == 0:
        return 0, ()
    page = await store.list_runs(query, limit=max(1, samples))
    return count, tuple(r.run_id for r in page.records)


@dataclass(frozen=True, slots=True)
class _Survey:
    """The registered versions compared with, and the runs in flight counted per status."""

    new: dict[str, Any]
    old: dict[str, Any]
    versions: Sequence[Any]
    names: dict[int, str]
    counts: dict[int, tuple[int, tuple[str, ...]]]
    stranded: list[Stranded]
    notes: list[str]


async def _survey(definition: Definition[T, S], store: ListsRuns, samples: int) -> _Survey:
    """What ``check_upgrade`` and ``stranded_at_start`` share: the stranded runs."""
    name = definition.name
    new = _document(definition)
    versions: Sequence[Any] = ()
    if isinstance(store, KeepsDefinitions):
        versions = await store.definition_versions(name)
    old: dict[str, Any] = json.loads(versions[-1].document) if versions else {}
    notes: list[str] = []
    if not versions:
        notes.append(
            "no definition of this workflow is registered in the store (it never ran "
            "there, or the store keeps none): only the statuses the new definition names "
            "were counted"
        )
    new_nodes = {int(n) for n in new["nodes"]} | {int(s) for s in new["statuses"]}
    new_consumed = _consumed(new)
    names = {**_names(new)}
    known: set[int] = set(new_nodes)
    for version in versions:
        document = json.loads(version.document)
        known |= {int(n) for n in document.get("nodes", ())} | _consumed(document)
        names = {**_names(document), **names}

    stranded: list[Stranded] = []
    counts: dict[int, tuple[int, tuple[str, ...]]] = {}
    for status in sorted(known):
        counts[status] = await _in_flight(store, name, status, samples)
        count, sample = counts[status]
        if count == 0 or status in new_consumed:
            continue
        reason = (
            "the status is not in the new definition's graph"
            if status not in {int(n) for n in new["nodes"]}
            else "no step, callback or timeout of the new definition consumes it"
        )
        stranded.append(Stranded(status, names.get(status, str(status)), count, sample, reason))
    return _Survey(new, old, versions, names, counts, stranded, notes)


async def check_upgrade(
    definition: Definition[T, S], store: RecordStore, *, samples: int = 5
) -> UpgradeCheck:
    """Compare ``definition`` with the latest one ``store`` registered for its workflow,
    and count the runs in flight the difference reaches (``samples`` run IDs each).

    Statuses are counted that either definition names, or that any registered version
    named, so runs left at a status by a version before the latest are found too. Raises
    ``TypeError`` if the store cannot list runs (``ListsRuns``).
    """
    if not isinstance(store, ListsRuns):
        raise TypeError(f"{type(store).__name__} cannot list runs: nothing can be checked")
    survey = await _survey(definition, store, samples)
    old, new, versions = survey.old, survey.new, survey.versions
    changes = _changes(old, new, survey.names, survey.counts) if old else []
    undecodable, error = await _try_decoding(definition, store, samples)
    if old and old.get("object_type") != new["object_type"]:
        changes.append(
            Change(f"object type {old.get('object_type')} is now {new['object_type']}", 0)
        )
    return UpgradeCheck(
        workflow_name=definition.name,
        registered_version=versions[-1].version if versions else None,
        same_definition=bool(versions) and versions[-1].document == definition_document(definition),
        stranded=tuple(survey.stranded),
        undecodable=undecodable,
        decode_error=error,
        changes=tuple(changes),
        notes=tuple(survey.notes),
    )


async def stranded_at_start(
    definition: Definition[T, S], store: RecordStore, *, samples: int = 3
) -> list[Stranded]:
    """The runs in flight at statuses ``definition`` does not move runs from, among the
    statuses any registered version named (what a worker warns about as it starts; only
    the counts: no object is decoded, no change listed). Empty when the store cannot list
    runs or keeps no definitions."""
    if not isinstance(store, ListsRuns) or not isinstance(store, KeepsDefinitions):
        return []
    return (await _survey(definition, store, samples)).stranded


def _changes(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    names: Mapping[int, str],
    counts: Mapping[int, tuple[int, tuple[str, ...]]],
) -> list[Change]:
    def label(status: int) -> str:
        return names.get(status, str(status))

    def runs(status: int) -> int:
        return counts.get(status, (0, ()))[0]

    changes: list[Change] = []
    old_edges = {(int(f), int(t)) for f, t in old.get("edges", ())}
    new_edges = {(int(f), int(t)) for f, t in new.get("edges", ())}
    new_steps = {int(s) for s in new.get("steps", ())}
    for source, destination in sorted(old_edges - new_edges):
        if source in new_steps:
            changes.append(
                Change(
                    f"the step at {label(source)} can no longer move runs to {label(destination)}",
                    runs(source),
                )
            )
    new_consumed = _consumed(new)
    for kind, singular in (("steps", "step"), ("callbacks", "callback"), ("timeouts", "timeout")):
        removed = {int(s) for s in old.get(kind, ())} - {int(s) for s in new.get(kind, ())}
        for status in sorted(removed):
            if status in new_consumed:  # else the runs there are stranded, reported as such
                changes.append(
                    Change(f"the {singular} at {label(status)} is removed", runs(status))
                )
    old_nodes = {int(n) for n in old.get("nodes", ())}
    new_nodes = {int(n) for n in new.get("nodes", ())}
    for status in sorted(old_nodes - new_nodes):
        if runs(status) == 0:
            changes.append(Change(f"status {label(status)} is removed (no run waits there)", 0))
    return changes


async def _try_decoding(
    definition: Definition[Any, Any], store: ListsRuns, samples: int
) -> tuple[tuple[str, ...], str]:
    """The sampled runs in flight whose object the definition's type fails to decode,
    and the first error."""
    codec: Codec[Any] = Codec(definition.object_type)
    query = RunQuery(workflow_name=definition.name, run_states=IN_FLIGHT)
    page = await store.list_runs(query, limit=max(1, samples))
    failed: list[str] = []
    error = ""
    for record in page.records:
        try:
            codec.decode(record.object)
        except DecodeError as exc:
            failed.append(record.run_id)
            error = error or str(exc)
    return tuple(failed), error
