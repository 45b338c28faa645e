"""What operators do to runs with only a store: read them by name, and act on them.

The web UI, its JSON API and the CLI share this layer, so that a run's allowed actions,
a status given by name, a short run ID and a bulk action mean the same thing everywhere.
Nothing here needs the workflow's code: status names and graphs come from the
definitions that running workflows registered (``KeepsDefinitions``).

Every action is a compare-and-set write of the run's next version: a single action on
the version the caller read (or the latest), a bulk action on the version each run had
when it was listed, never retried when the run moved meanwhile (``changed``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, get_args

from ._capabilities import (
    DefinitionRecord,
    KeepsDefinitions,
    ListsRuns,
    RecordsFailures,
    RunQuery,
)
from ._clock import Clock, SystemClock
from ._control import check_move
from ._errors import (
    InvalidTransition,
    RecordNotFound,
    VersionConflict,
    WorkflowError,
)
from ._protocols import RecordStore, RecordWrite
from ._record import Failure, Record
from ._runstate import RunState
from ._writer import RecordWriter

__all__ = [
    "ACTIONS",
    "Action",
    "AmbiguousRunID",
    "BulkOutcome",
    "Operator",
    "RunDetail",
    "UnknownStatus",
    "WorkflowInfo",
    "allowed_actions",
    "states_allowing",
]

Action = Literal["pause", "resume", "cancel", "delete", "retry"]
ACTIONS: tuple[Action, ...] = get_args(Action)

_TARGETS: dict[Action, RunState] = {
    "pause": RunState.PAUSED,
    "resume": RunState.RUNNING,
    "cancel": RunState.CANCELLED,
    "delete": RunState.REQUESTED_DATA_DELETED,
}

RETRY_REASON = "retry requested"
"""The reason an operator's retry writes (``retry requested: <why>`` when given one)."""

BULK_LIMIT = 1000
"""The most runs one bulk action touches; its cursor continues."""

FULL_RUN_ID = 36
"""The length of a run ID the engine makes (a UUID in text): shorter means a prefix."""


class AmbiguousRunID(WorkflowError, LookupError):
    """A short run ID that starts more than one run's ID."""


class UnknownStatus(WorkflowError, ValueError):
    """A status given by a name that no registered definition has (or by a bad number)."""


@dataclass(frozen=True, slots=True)
class WorkflowInfo:
    """A registered definition, read back: what tools show of a workflow."""

    name: str
    version: int
    hash: str
    registered_at: datetime
    statuses: Mapping[int, str]
    edges: tuple[tuple[int, int], ...] = ()
    nodes: tuple[int, ...] = ()
    """Every status of the graph, by number."""
    starting: tuple[int, ...] = ()
    terminal: tuple[int, ...] = ()
    steps: frozenset[int] = frozenset()
    callbacks: frozenset[int] = frozenset()
    timeouts: frozenset[int] = frozenset()

    @classmethod
    def of(cls, record: DefinitionRecord) -> WorkflowInfo:
        """Read ``record``'s document (a document of another format keeps only its name)."""
        try:
            doc = json.loads(record.document)
            statuses = {int(k): str(v) for k, v in doc["statuses"].items()}
            return cls(
                name=record.workflow_name,
                version=record.version,
                hash=record.hash,
                registered_at=record.registered_at,
                statuses=statuses,
                edges=tuple((int(f), int(t)) for f, t in doc["edges"]),
                nodes=tuple(sorted(int(n) for n in doc["nodes"])),
                starting=tuple(int(n) for n in doc["starting"]),
                terminal=tuple(int(n) for n in doc["terminal"]),
                steps=frozenset(int(n) for n in doc["steps"]),
                callbacks=frozenset(int(n) for n in doc["callbacks"]),
                timeouts=frozenset(int(n) for n in doc["timeouts"]),
            )
        except (ValueError, KeyError, TypeError):
            return cls(record.workflow_name, record.version, record.hash, record.registered_at, {})

    def status_name(self, status: int) -> str:
        """The status's name, or its number when the definition does not have it."""
        return self.statuses.get(status, str(status))


@dataclass(frozen=True, slots=True)
class RunDetail:
    """One run as operators see it: the record, its latest failure, what may be done."""

    record: Record
    failure: Failure | None
    actions: tuple[Action, ...]

    @property
    def waiting_for_retry(self) -> bool:
        """The current version failed and its next attempt is scheduled."""
        return _waiting(self.record, self.failure)


@dataclass(slots=True)
class BulkOutcome:
    """What a bulk action did to each run it was given."""

    moved: list[Record] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    """Runs whose version moved after they were listed (not retried)."""
    refused: list[tuple[str, str]] = field(default_factory=list)
    """Runs the action does not apply to, each with why."""
    cursor: str | None = None
    """Where the listing continues (``None``: nothing more matches the filter)."""


def _waiting(record: Record, failure: Failure | None) -> bool:
    return (
        failure is not None
        and failure.version == record.meta.version
        and failure.next_attempt_at is not None
    )


def states_allowing(action: Action) -> tuple[RunState, ...]:
    """The run states a run may be in for ``action`` to apply (``retry``: those whose
    step can have a next attempt scheduled)."""
    if action == "retry":
        return (RunState.INITIATED, RunState.RUNNING)
    if action == "resume":
        return (RunState.PAUSED,)  # Initiated -> Running is the engine's move, not a resume
    to = _TARGETS[action]
    return tuple(s for s in RunState if s.can_transition_to(to))


def allowed_actions(record: Record, failure: Failure | None = None) -> tuple[Action, ...]:
    """The actions the RunState table (and, for ``retry``, the run's failure) allows."""
    state = record.run_state
    found: list[Action] = [a for a in _TARGETS if state in states_allowing(a)]
    if _waiting(record, failure):
        found.append("retry")
    return tuple(found)


class Operator:
    """Reads and moves runs of one store on behalf of a person (the UI, the API, the CLI).

    ``definitions_ttl`` is how long the registered definitions are cached (they change
    only when a workflow with a changed graph starts).
    """

    def __init__(
        self,
        store: RecordStore,
        clock: Clock | None = None,
        *,
        definitions_ttl: float = 5.0,
    ) -> None:
        self.store = store
        self.writer = RecordWriter(store, clock or SystemClock())
        self._ttl = definitions_ttl
        self._workflows: dict[str, WorkflowInfo] = {}
        self._read_at = float("-inf")

    # ------------------------------------------------------------------ definitions

    async def workflows(self) -> Mapping[str, WorkflowInfo]:
        """The latest registered definition of each workflow, by name."""
        if time.monotonic() - self._read_at > self._ttl:
            found: dict[str, WorkflowInfo] = {}
            if isinstance(self.store, KeepsDefinitions):
                for record in await self.store.definitions():
                    found[record.workflow_name] = WorkflowInfo.of(record)
            self._workflows = found
            self._read_at = time.monotonic()
        return self._workflows

    async def status_name(self, workflow: str, status: int) -> str:
        """``status``'s name in ``workflow``'s registered definition (else its number)."""
        info = (await self.workflows()).get(workflow)
        return info.status_name(status) if info is not None else str(status)

    async def statuses(self, values: Iterable[str], workflow: str = "") -> tuple[int, ...]:
        """Status numbers for ``values``, each a number or a name.

        A name is looked up in ``workflow``'s definition, or, without one, in every
        registered definition, which must agree on its number. Raises ``UnknownStatus``.
        """
        infos = await self.workflows()
        numbers: list[int] = []
        for value in values:
            text = value.strip()
            if text.lstrip("-").isdigit():
                numbers.append(int(text))
                continue
            scope = [infos[workflow]] if workflow in infos else [] if workflow else infos.values()
            found = {
                number
                for info in scope
                for number, name in info.statuses.items()
                if name.lower() == text.lower()
            }
            if not found:
                where = f"workflow {workflow!r}" if workflow else "any registered workflow"
                raise UnknownStatus(f"status {text!r} is not a status of {where}")
            if len(found) > 1:
                raise UnknownStatus(
                    f"status {text!r} has different numbers in different workflows "
                    f"({', '.join(str(n) for n in sorted(found))}): name the workflow"
                )
            numbers.extend(found)
        return tuple(numbers)

    # ------------------------------------------------------------------ reading runs

    async def resolve(self, run_id: str) -> Record:
        """The run whose ID is ``run_id``, or the only run whose ID starts with it.

        Raises ``RecordNotFound``, or ``AmbiguousRunID`` for a prefix of several.
        """
        text = run_id.strip()
        if not text:
            raise RecordNotFound("no run ID given")
        try:
            return await self.store.lookup(text)
        except RecordNotFound:
            if len(text) >= FULL_RUN_ID or not isinstance(self.store, ListsRuns):
                raise
        page = await self.store.list_runs(RunQuery(run_id_prefix=text), limit=2)
        if not page.records:
            raise RecordNotFound(f"no run ID starts with {text!r}")
        if len(page.records) > 1:
            raise AmbiguousRunID(
                f"{text!r} starts more than one run ID "
                f"({page.records[0].run_id}, {page.records[1].run_id}, ...): give more of it"
            )
        return page.records[0]

    async def latest_failure(self, record: Record) -> Failure | None:
        """The latest failed attempt at ``record``'s version (``None`` if none or not kept)."""
        if not isinstance(self.store, RecordsFailures):
            return None
        found = await self.store.failures(record.run_id, record.meta.version)
        return found[-1] if found else None

    async def detail(self, run_id: str) -> RunDetail:
        """The run (``run_id`` or a unique prefix), its latest failure and its actions."""
        record = await self.resolve(run_id)
        failure = await self.latest_failure(record)
        return RunDetail(record, failure, allowed_actions(record, failure))

    # ------------------------------------------------------------------ acting

    async def act(
        self, action: Action, run_id: str, reason: str = "", *, version: int | None = None
    ) -> Record:
        """Apply ``action`` to one run (``run_id`` or a unique prefix); return its new record.

        With ``version`` the write is a compare-and-set on that version (raises
        ``VersionConflict`` if the run moved since the caller read it); without, on the
        version read here. Raises ``InvalidTransition`` when the run's state does not
        allow the action.
        """
        record = await self.resolve(run_id)
        if version is not None and version != record.meta.version:
            raise VersionConflict(record.run_id, version, record.meta.version)
        write = await self._write_for(action, record, reason)
        await self.writer.write(write)
        return write.record

    async def bulk(
        self,
        action: Action,
        records: Sequence[Record],
        reason: str = "",
        *,
        cursor: str | None = None,
    ) -> BulkOutcome:
        """Apply ``action`` to each of ``records`` at the version it has there.

        A run whose stored version moved since is ``changed`` (not retried); one whose
        state does not allow the action is ``refused`` with why. ``cursor`` is handed
        back in the outcome.
        """
        outcome = BulkOutcome(cursor=cursor)
        writes: list[RecordWrite] = []
        for record in records[:BULK_LIMIT]:
            try:
                writes.append(await self._write_for(action, record, reason))
            except InvalidTransition as exc:
                outcome.refused.append((record.run_id, str(exc)))
        if not writes:
            return outcome
        results = await self.writer.write_many(writes)
        for write, result in zip(writes, results, strict=True):
            if result is None:
                outcome.moved.append(write.record)
            elif isinstance(result, VersionConflict):
                outcome.changed.append(write.record.run_id)
            else:  # WorkflowInProgress: not a write an operator's action makes
                outcome.refused.append((write.record.run_id, str(result)))
        return outcome

    async def bulk_ids(
        self,
        action: Action,
        run_ids: Sequence[tuple[str, int | None]],
        reason: str = "",
    ) -> BulkOutcome:
        """``bulk`` over runs named by ID, each at the version given (else as read now)."""
        outcome = BulkOutcome()
        records: list[Record] = []
        named = run_ids[:BULK_LIMIT]
        # Looked up together: the SQL stores answer the lookups of one turn in one query.
        found = await asyncio.gather(
            *(self.store.lookup(run_id) for run_id, _ in named), return_exceptions=True
        )
        for (run_id, version), record in zip(named, found, strict=True):
            if isinstance(record, RecordNotFound):
                outcome.refused.append((run_id, "run not found"))
                continue
            if isinstance(record, BaseException):
                raise record
            if version is not None and version != record.meta.version:
                outcome.changed.append(run_id)
                continue
            records.append(record)
        done = await self.bulk(action, records, reason)
        outcome.moved = done.moved
        outcome.changed += done.changed
        outcome.refused += done.refused
        return outcome

    async def move_status(
        self, workflow: str, source: int, destination: int, reason: str = ""
    ) -> BulkOutcome:
        """Move up to ``BULK_LIMIT`` runs of ``workflow`` in flight (Initiated, Running or
        Paused) at status ``source`` to status ``destination``: for runs a new definition
        stranded (``conveyor check``), to a status it consumes. Each write keeps the run's
        state, is a compare-and-set on the version listed, and its event reaches the
        consumer of ``destination``. ``cursor`` is set while more runs may wait there.
        """
        if source == destination:
            raise InvalidTransition(f"runs are at status {source} already")
        if not isinstance(self.store, ListsRuns):
            raise WorkflowError(f"{type(self.store).__name__} cannot list runs")
        query = RunQuery(
            workflow_name=workflow,
            statuses=(source,),
            run_states=(RunState.INITIATED, RunState.RUNNING, RunState.PAUSED),
        )
        page = await self.store.list_runs(query, limit=BULK_LIMIT)
        text = reason or f"moved from status {source} to {destination} by an operator"
        writes = [self.writer.update(r, status=destination, reason=text) for r in page.records]
        outcome = BulkOutcome(cursor=page.cursor)
        if not writes:
            return outcome
        for write, result in zip(writes, await self.writer.write_many(writes), strict=True):
            if result is None:
                outcome.moved.append(write.record)
            elif isinstance(result, VersionConflict):
                outcome.changed.append(write.record.run_id)
            else:
                outcome.refused.append((write.record.run_id, str(result)))
        return outcome

    async def _write_for(self, action: Action, record: Record, reason: str) -> RecordWrite:
        """The write that applies ``action`` to ``record`` (raises ``InvalidTransition``)."""
        if action == "retry":
            failure = await self.latest_failure(record)
            if not _waiting(record, failure):
                raise InvalidTransition(
                    f"cannot retry a run that is not waiting for its next attempt "
                    f"(run_id={record.run_id}, {record.run_state})"
                )
            text = f"{RETRY_REASON}: {reason}" if reason else RETRY_REASON
            # The same status and run state at the next version: its event makes the
            # consumer attempt the run now; the scheduled retry of the old version is
            # then skipped by the version rule.
            return self.writer.update(record, reason=text)
        to = _TARGETS.get(action)
        if to is None:
            raise InvalidTransition(f"unknown action {action!r}: one of {', '.join(ACTIONS)}")
        if action == "resume" and record.run_state is not RunState.PAUSED:
            raise InvalidTransition(
                f"cannot resume a run that is {record.run_state} (run_id={record.run_id}): "
                "only a paused run resumes"
            )
        check_move(record, to)
        # An empty reason keeps the run's earlier one (a delete keeps why it was cancelled;
        # the history keeps every version's reason either way); a resume clears it.
        kept = reason if reason or to is RunState.RUNNING else None
        return self.writer.update(record, run_state=to, reason=kept)
