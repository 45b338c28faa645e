"""``conveyor check``: what deploying these workflow definitions would do to runs in flight."""

from __future__ import annotations

from collections.abc import Sequence

from .._capabilities import ListsRuns
from .._upgrade import COUNT_CAP, UpgradeCheck, check_upgrade
from ._common import existing
from ._worker import WorkerError, load_targets

__all__ = ["check_targets", "report_lines"]


async def check_targets(targets: Sequence[str], url: str, samples: int) -> list[UpgradeCheck]:
    """Build each target's workflow on the store at ``url`` (without running it) and check
    it against the definition the store registered."""
    factories = load_targets(targets)
    async with existing(url) as backend:
        if not isinstance(backend.record_store, ListsRuns):
            raise WorkerError("this store cannot list runs, so nothing can be checked")
        checks = []
        for _, factory in factories:
            workflow = factory(backend)
            checks.append(
                await check_upgrade(workflow.definition, backend.record_store, samples=samples)
            )
        return checks


def _count(n: int) -> str:
    return f"{n:,}+" if n >= COUNT_CAP else f"{n:,}"


def _runs(n: int) -> str:
    return f"{_count(n)} run{'' if n == 1 else 's'}"


def report_lines(check: UpgradeCheck) -> list[str]:
    """The check of one workflow as lines of plain text."""
    if check.registered_version is None:
        against = "no registered definition"
    else:
        against = f"registered definition version {check.registered_version}"
        if check.same_definition:
            against += " (the same definition)"
    lines = [f"workflow {check.workflow_name}: compared with {against}"]
    for s in check.stranded:
        sample = ", ".join(s.sample_run_ids)
        lines.append(
            f"  STRANDED: {_runs(s.count)} in flight at {s.name} ({s.status}): {s.reason}; "
            f"e.g. {sample}"
        )
    if check.undecodable:
        lines.append(
            f"  STRANDED: {len(check.undecodable)} sampled run(s) in flight whose object the "
            f"new object type cannot decode: {', '.join(check.undecodable)} "
            f"({check.decode_error})"
        )
    for change in check.changes:
        reach = f" ({_runs(change.runs)} in flight there)" if change.runs else ""
        lines.append(f"  changed: {change.what}{reach}")
    for note in check.notes:
        lines.append(f"  note: {note}")
    if check.strands_runs:
        lines.append("  => deploying this definition would strand runs in flight")
    elif not check.changes:
        lines.append("  => no run in flight is stranded or changed")
    else:
        lines.append("  => no run in flight is stranded")
    return lines
