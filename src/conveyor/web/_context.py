"""What every route shares: the operator over the store, the guard, and error mapping."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from .._errors import (
    AdapterError,
    InvalidTransition,
    RecordNotFound,
    VersionConflict,
    WorkflowError,
)
from .._operator import AmbiguousRunID, Operator, UnknownStatus
from .._urls import scrub
from ._filters import BadFilter
from ._security import Guard

__all__ = ["Context", "Refusal", "context", "error_status"]


@dataclass(frozen=True, slots=True)
class Context:
    operator: Operator
    guard: Guard
    url: str = ""
    """The store's URL, only to mask its secrets in messages (never shown)."""
    title: str = "conveyor"


def context(request: Request) -> Context:
    """The app's context (set by ``create_app``)."""
    found: Context = request.app.state.conveyor
    return found


class Refusal(Exception):
    """A request the app refuses: an HTTP status, a short code and words for people."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


def error_status(exc: Exception, url: str = "") -> Refusal:
    """The refusal that stands for ``exc`` (a conveyor error, or the store failing)."""
    if isinstance(exc, Refusal):
        return exc
    text = scrub(str(exc), url)
    if isinstance(exc, RecordNotFound):
        return Refusal(404, "not_found", text)
    if isinstance(exc, AmbiguousRunID):
        return Refusal(400, "ambiguous_run_id", text)
    if isinstance(exc, UnknownStatus | BadFilter):
        return Refusal(400, "bad_filter", text)
    if isinstance(exc, VersionConflict):
        return Refusal(409, "changed", text)
    if isinstance(exc, InvalidTransition):
        return Refusal(409, "refused", text)
    if isinstance(exc, AdapterError) and "cursor" in text:
        return Refusal(400, "bad_cursor", text)
    if isinstance(exc, WorkflowError):
        return Refusal(503, "store_failed", text)
    return Refusal(500, "internal", "internal error")
