"""The UI's pages: server-rendered HTML forms over the same operator as the API.

No script: filters are a GET form, actions are POST forms carrying the CSRF value, a
bulk action first shows how many runs it will touch and asks again.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from .._capabilities import KeepsHistory, ListsRuns, RunQuery
from .._operator import ACTIONS, BULK_LIMIT, Action, states_allowing
from .._runstate import RunState
from ._api import list_page, status_names
from ._context import Context, Refusal, context, error_status
from ._diagram import svg
from ._filters import RUN_STATES, FilterText
from ._models import object_value
from ._security import COOKIE

__all__ = ["router", "templates"]

COUNT_CAP = 10_000
"""State counts stop here and show "10,000+" (a page stays fast with a million runs)."""

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
router = APIRouter(include_in_schema=False)

_VERB = {
    "pause": "Pause",
    "resume": "Resume",
    "cancel": "Cancel",
    "delete": "Delete data of",
    "retry": "Retry",
}


def _count(n: int) -> str:
    return f"{COUNT_CAP:,}+" if n >= COUNT_CAP else f"{n:,}"


def _reader(request: Request) -> Context:
    ctx = context(request)
    if not ctx.guard.may_read(request):
        raise Refusal(401, "unauthorized", "log in with the token to see this UI")
    return ctx


def _actor(request: Request, csrf: str) -> Context:
    ctx = context(request)
    if not ctx.guard.session_ok(request):
        raise Refusal(401, "unauthorized", "log in with the token to act on runs")
    if not ctx.guard.csrf_ok(csrf):
        raise Refusal(403, "csrf", "this form is stale or came from another site: reload it")
    return ctx


def page(request: Request, name: str, status: int = 200, **values: object) -> HTMLResponse:
    """Render ``name`` with what every page shows (login state, CSRF value)."""
    ctx = context(request)
    authed = ctx.guard.session_ok(request)
    values.update(
        title=ctx.title,
        authed=authed,
        csrf=ctx.guard.csrf() if authed else "",
        verbs=_VERB,
    )
    return templates.TemplateResponse(request, name, values, status_code=status)


def _filter_of(
    workflow: str,
    foreign_id: str,
    foreign_id_prefix: str,
    status: list[str],
    run_state: list[str],
    created_after: str,
    created_before: str,
) -> FilterText:
    return FilterText.of(
        workflow=workflow,
        foreign_id=foreign_id,
        foreign_id_prefix=foreign_id_prefix,
        status=status,
        run_state=run_state,
        created_after=created_after,
        created_before=created_before,
    )


Text = Annotated[str, Query(max_length=2000)]
Many = Annotated[list[str], Query()]


async def _count_in(ctx: Context, query: RunQuery, states: Sequence[RunState]) -> int:
    """How many runs match ``query`` at one of ``states``, counting at most ``COUNT_CAP``.

    Each count is one workflow and one run state, so it is served by the run-state index;
    without a workflow in ``query`` it sums over the registered workflows.
    """
    store = ctx.operator.store
    if not isinstance(store, ListsRuns):
        return 0
    scopes = (
        [query.workflow_name] if query.workflow_name else sorted(await ctx.operator.workflows())
    )
    total = 0
    for state in states:
        for name in scopes:
            narrowed = dataclasses.replace(query, workflow_name=name, run_states=(state,))
            total += await store.count_runs(narrowed, cap=COUNT_CAP - total)
            if total >= COUNT_CAP:
                return total
    return total


async def _state_counts(ctx: Context, query: RunQuery) -> list[tuple[str, str, str]]:
    """(name, key, count) per run state for ``query`` without its run-state filter."""
    if not isinstance(ctx.operator.store, ListsRuns):
        return []
    return [
        (str(state), key, _count(await _count_in(ctx, query, (state,))))
        for key, state in RUN_STATES.items()
    ]


@router.get("/", response_class=HTMLResponse)
async def run_list(
    request: Request,
    workflow: Text = "",
    foreign_id: Text = "",
    foreign_id_prefix: Text = "",
    status: Many = [],  # noqa: B006
    run_state: Many = [],  # noqa: B006
    created_after: Text = "",
    created_before: Text = "",
    cursor: Text = "",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    done: Text = "",
) -> HTMLResponse:
    ctx = _reader(request)
    text = _filter_of(
        workflow, foreign_id, foreign_id_prefix, status, run_state, created_after, created_before
    )
    error = ""
    records: list[object] = []
    following = None
    counts: list[tuple[str, str, str]] = []
    try:
        query = await text.query(ctx.operator)
        result = await list_page(
            ctx.operator, text, limit=limit, cursor=cursor or None, newest_first=True
        )
        names = await status_names(ctx.operator, list(result.records))
        records = list(zip(result.records, names, strict=True))
        following = result.cursor
        counts = await _state_counts(ctx, query)
    except Exception as exc:  # shown on the page beside the form, so it can be mended
        refusal = error_status(exc, ctx.url)
        if refusal.status >= 500:
            raise
        error = refusal.detail
    base = text.pairs()
    return page(
        request,
        "runs.html",
        filter=text,
        workflows=sorted(await ctx.operator.workflows()),
        run_states=[(k, str(s)) for k, s in RUN_STATES.items()],
        runs=records,
        counts=counts,
        error=error,
        done=done,
        next_link="?" + urlencode([*base, ("cursor", following)]) if following else "",
        first_link="?" + urlencode(base) if cursor else "",
        filter_query=urlencode(base),
        bulk_actions=ACTIONS,
    )


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(request: Request, run_id: str, done: Text = "") -> HTMLResponse:
    ctx = _reader(request)
    operator = ctx.operator
    detail = await operator.detail(run_id)
    record = detail.record
    [name] = await status_names(operator, [record])
    history = []
    if isinstance(operator.store, KeepsHistory):
        for e in await operator.store.history(record.run_id):
            history.append((e, await operator.status_name(record.workflow_name, e.status)))
    info = (await operator.workflows()).get(record.workflow_name)
    obj = object_value(record.object)
    pretty = json.dumps(obj, indent=2, ensure_ascii=False) if not isinstance(obj, str) else obj
    return page(
        request,
        "run.html",
        detail=detail,
        record=record,
        status_name=name,
        object_text=pretty,
        history=list(reversed(history)),
        diagram=svg(info, record.status) if info is not None and info.edges else None,
        done=done,
    )


@router.post("/runs/{run_id}/{action}")
async def run_action(
    request: Request,
    run_id: str,
    action: Action,
    csrf: Annotated[str, Form()] = "",
    reason: Annotated[str, Form(max_length=4096)] = "",
    version: Annotated[int | None, Form()] = None,
) -> Response:
    ctx = _actor(request, csrf)
    record = await ctx.operator.act(action, run_id, reason, version=version)
    return RedirectResponse(f"/runs/{record.run_id}?done={action}", status_code=303)


@router.get("/bulk/{action}", response_class=HTMLResponse)
async def bulk_confirm(
    request: Request,
    action: Action,
    workflow: Text = "",
    foreign_id: Text = "",
    foreign_id_prefix: Text = "",
    status: Many = [],  # noqa: B006
    run_state: Many = [],  # noqa: B006
    created_after: Text = "",
    created_before: Text = "",
) -> HTMLResponse:
    ctx = _reader(request)
    text = _filter_of(
        workflow, foreign_id, foreign_id_prefix, status, run_state, created_after, created_before
    )
    query = await text.query(ctx.operator)
    if not isinstance(ctx.operator.store, ListsRuns):
        raise Refusal(501, "not_supported", "this store cannot list runs by filter")
    allowing = states_allowing(action)
    states = [s for s in allowing if not query.run_states or s in query.run_states]
    n = await _count_in(ctx, query, states)
    return page(
        request,
        "confirm.html",
        action=action,
        filter=text,
        count=_count(n),
        states=[str(s) for s in states],
        at_most=action == "retry",
        batch=BULK_LIMIT,
        filter_query=urlencode(text.pairs()),
    )


@router.post("/bulk/{action}", response_class=HTMLResponse)
async def bulk_run(
    request: Request,
    action: Action,
    csrf: Annotated[str, Form()] = "",
    reason: Annotated[str, Form(max_length=4096)] = "",
    cursor: Annotated[str, Form()] = "",
    workflow: Annotated[str, Form()] = "",
    foreign_id: Annotated[str, Form()] = "",
    foreign_id_prefix: Annotated[str, Form()] = "",
    status: Annotated[list[str], Form()] = [],  # noqa: B006
    run_state: Annotated[list[str], Form()] = [],  # noqa: B006
    created_after: Annotated[str, Form()] = "",
    created_before: Annotated[str, Form()] = "",
) -> HTMLResponse:
    ctx = _actor(request, csrf)
    text = _filter_of(
        workflow, foreign_id, foreign_id_prefix, status, run_state, created_after, created_before
    )
    result = await list_page(
        ctx.operator, text, limit=BULK_LIMIT, cursor=cursor or None, newest_first=True
    )
    outcome = await ctx.operator.bulk(action, result.records, reason, cursor=result.cursor)
    return page(
        request,
        "bulk_done.html",
        action=action,
        filter=text,
        outcome=outcome,
        reason=reason,
        filter_query=urlencode(text.pairs()),
    )


@router.get("/workflows", response_class=HTMLResponse)
async def workflow_list(request: Request) -> HTMLResponse:
    ctx = _reader(request)
    infos = await ctx.operator.workflows()
    shown = [(i, svg(i) if i.edges else None) for _, i in sorted(infos.items())]
    return page(request, "workflows.html", workflows=shown)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: Text = "/") -> HTMLResponse:
    return page(request, "login.html", next=_local(next), error="")


def _local(target: str) -> str:
    """Only a path of this app (no open redirect to another site)."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


@router.post("/login")
async def login(
    request: Request,
    token: Annotated[str, Form(max_length=500)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    ctx = context(request)
    if not ctx.guard.token_ok(token):
        return page(request, "login.html", status=401, next=_local(next), error="wrong token")
    response = RedirectResponse(_local(next), status_code=303)
    response.set_cookie(
        COOKIE,
        ctx.guard.session,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout")
async def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    _actor(request, csrf)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
