"""The JSON API under ``/api``: read runs and definitions, act on one run or many."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request

from .._capabilities import KeepsHistory, ListsRuns, RunPage
from .._operator import BULK_LIMIT, Action, BulkOutcome, Operator
from .._record import Record
from ._context import Context, Refusal, context
from ._filters import FilterText, RunStateName
from ._models import (
    ActionBody,
    BulkBody,
    BulkOut,
    ErrorOut,
    HistoryEntryOut,
    HistoryOut,
    RunDetailOut,
    RunOut,
    RunPageOut,
    RunRef,
    WorkflowOut,
    WorkflowsOut,
)

__all__ = ["router", "list_page", "status_names"]

ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorOut, "description": "A filter, cursor or run ID that means nothing."},
    401: {"model": ErrorOut, "description": "The token is missing or wrong."},
    404: {"model": ErrorOut, "description": "No such run."},
}
ACT_ERRORS: dict[int | str, dict[str, object]] = {
    **ERRORS,
    409: {"model": ErrorOut, "description": "The run's state refuses it, or it changed."},
}


def reader(request: Request) -> Context:
    """The context, for a request that may read (else 401)."""
    ctx = context(request)
    if not ctx.guard.may_read(request):
        raise Refusal(401, "unauthorized", "this UI needs the token to read: send it as a bearer")
    return ctx


def actor(request: Request) -> Context:
    """The context, for a request that may act: the bearer token (else 401)."""
    ctx = context(request)
    if not ctx.guard.bearer_ok(request):
        raise Refusal(401, "unauthorized", "actions need the token: Authorization: Bearer <token>")
    return ctx


Reader = Annotated[Context, Depends(reader)]
Actor = Annotated[Context, Depends(actor)]

router = APIRouter(prefix="/api", responses=ERRORS)


async def status_names(operator: Operator, records: list[Record]) -> list[str]:
    """Each record's status name: the registered definition's, else the record's own."""
    infos = await operator.workflows()
    out: list[str] = []
    for r in records:
        info = infos.get(r.workflow_name)
        name = info.statuses.get(r.status) if info is not None else None
        out.append(name or r.meta.status_description or str(r.status))
    return out


async def list_page(
    operator: Operator, filter: FilterText, *, limit: int, cursor: str | None, newest_first: bool
) -> RunPage:
    """One page of runs matching ``filter``."""
    store = operator.store
    if not isinstance(store, ListsRuns):
        raise Refusal(501, "not_supported", "this store cannot list runs by filter")
    query = await filter.query(operator, newest_first=newest_first)
    return await store.list_runs(query, limit=limit, cursor=cursor or None)


@router.get("/workflows", summary="The registered workflow definitions")
async def workflows(ctx: Reader) -> WorkflowsOut:
    infos = await ctx.operator.workflows()
    return WorkflowsOut(workflows=[WorkflowOut.of(i) for _, i in sorted(infos.items())])


@router.get("/runs", summary="Runs matching a filter, newest first, a page at a time")
async def runs(
    ctx: Reader,
    workflow: Annotated[str, Query(max_length=500)] = "",
    foreign_id: Annotated[str | None, Query(max_length=2000)] = None,
    foreign_id_prefix: Annotated[str | None, Query(max_length=2000)] = None,
    status: Annotated[list[str], Query(description="Numbers or names; repeat or comma.")] = [],  # noqa: B006
    run_state: Annotated[list[RunStateName], Query()] = [],  # noqa: B006
    created_after: Annotated[datetime | None, Query(description="Inclusive.")] = None,
    created_before: Annotated[datetime | None, Query(description="Exclusive.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
    oldest_first: bool = False,
) -> RunPageOut:
    text = FilterText.of(
        workflow=workflow,
        foreign_id=foreign_id,
        foreign_id_prefix=foreign_id_prefix,
        status=status,
        run_state=run_state,
        created_after=created_after,
        created_before=created_before,
    )
    page = await list_page(
        ctx.operator, text, limit=limit, cursor=cursor, newest_first=not oldest_first
    )
    records = list(page.records)
    names = await status_names(ctx.operator, records)
    return RunPageOut(
        runs=[RunOut.of(r, n) for r, n in zip(records, names, strict=True)], cursor=page.cursor
    )


RunID = Annotated[str, Path(min_length=1, max_length=200, description="A run ID or a prefix.")]


@router.get("/runs/{run_id}", summary="One run: record, object, latest failure, actions")
async def run(ctx: Reader, run_id: RunID) -> RunDetailOut:
    detail = await ctx.operator.detail(run_id)
    [name] = await status_names(ctx.operator, [detail.record])
    return RunDetailOut.of_detail(detail, name)


@router.get("/runs/{run_id}/history", summary="Every version of a run, with its failures")
async def history(ctx: Reader, run_id: RunID) -> HistoryOut:
    store = ctx.operator.store
    if not isinstance(store, KeepsHistory):
        raise Refusal(501, "not_supported", "this store keeps no run history")
    record = await ctx.operator.resolve(run_id)
    entries = await store.history(record.run_id)
    names = [await ctx.operator.status_name(record.workflow_name, e.status) for e in entries]
    return HistoryOut(
        run_id=record.run_id,
        history=[HistoryEntryOut.of(e, n) for e, n in zip(entries, names, strict=True)],
    )


@router.post(
    "/runs/{run_id}/{action}",
    summary="Pause, resume, cancel, delete the data of, or retry one run",
    responses=ACT_ERRORS,
)
async def act(
    ctx: Actor,
    run_id: RunID,
    action: Action,
    body: Annotated[ActionBody | None, Body()] = None,
) -> RunOut:
    given = body or ActionBody()
    record = await ctx.operator.act(action, run_id, given.reason, version=given.version)
    [name] = await status_names(ctx.operator, [record])
    return RunOut.of(record, name)


@router.post(
    "/bulk/{action}",
    summary="Act on up to 1,000 runs, named or matching a filter",
    responses=ACT_ERRORS,
)
async def bulk(ctx: Actor, action: Action, body: BulkBody) -> BulkOut:
    if (body.run_ids is None) == (body.filter is None):
        raise Refusal(400, "bad_request", "give either run_ids or filter")
    operator = ctx.operator
    outcome: BulkOutcome
    if body.run_ids is not None:
        refs = [r if isinstance(r, RunRef) else RunRef(run_id=r) for r in body.run_ids]
        outcome = await operator.bulk_ids(
            action, [(r.run_id, r.version) for r in refs], body.reason
        )
    else:
        assert body.filter is not None
        f = body.filter
        text = FilterText.of(
            workflow=f.workflow,
            foreign_id=f.foreign_id,
            foreign_id_prefix=f.foreign_id_prefix,
            status=f.status,
            run_state=f.run_state,
            created_after=f.created_after,
            created_before=f.created_before,
        )
        page = await list_page(
            operator, text, limit=min(body.limit, BULK_LIMIT), cursor=body.cursor, newest_first=True
        )
        outcome = await operator.bulk(action, page.records, body.reason, cursor=page.cursor)
    return BulkOut.of(outcome)
