"""``create_app``: the UI and the JSON API over one record store, as an ASGI app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp

from .._clock import Clock
from .._errors import WorkflowError
from .._operator import Operator
from .._protocols import RecordStore
from ._api import router as api_router
from ._context import Context, Refusal, error_status
from ._pages import page
from ._pages import router as page_router
from ._security import Guard

__all__ = ["create_app"]

LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")

_HEADERS = {
    # Every asset is the app's own: no script runs at all, styles and images only from here.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def create_app(
    store: RecordStore,
    *,
    token: str,
    reads_need_token: bool = False,
    allowed_hosts: Sequence[str] = LOCAL_HOSTS,
    clock: Clock | None = None,
    store_url: str = "",
    title: str = "conveyor",
) -> ASGIApp:
    """The web UI at ``/`` and the JSON API at ``/api`` over ``store``.

    ``token`` is needed for every action (a bearer header on the API, a login on the
    UI); with ``reads_need_token`` reads need it too (a UI bound to anything but
    loopback). ``allowed_hosts`` are the ``Host`` header values served (others get 400,
    which stops DNS rebinding). ``store_url`` only lets messages mask its secrets.
    The app is a ``fastapi.FastAPI`` (typed as the ASGI app it is, to mount or serve).
    """
    if not token:
        raise ValueError("create_app needs a token (conveyor.web.new_token() makes one)")
    app = FastAPI(
        title=f"{title} API",
        summary="Runs of conveyor workflows: list, inspect, pause, resume, cancel, retry.",
        version="1",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.conveyor = Context(
        operator=Operator(store, clock),
        guard=Guard(token, reads_need_token),
        url=store_url,
        title=title,
    )
    app.include_router(api_router)
    app.include_router(page_router)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))

    @app.middleware("http")
    async def headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for key, value in _HEADERS.items():
            response.headers.setdefault(key, value)
        return response

    async def refused(request: Request, exc: Exception) -> Response:
        refusal = error_status(exc, store_url)
        headers = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else None
        if request.url.path.startswith("/api"):
            return JSONResponse(
                {"error": refusal.code, "detail": refusal.detail},
                status_code=refusal.status,
                headers=headers,
            )
        if refusal.status == 401 and request.method == "GET":
            return page(request, "login.html", status=401, next=request.url.path, error="")
        return page(request, "error.html", status=refusal.status, refusal=refusal)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()
        )
        if request.url.path.startswith("/api"):
            return JSONResponse({"error": "bad_request", "detail": detail}, status_code=422)
        return page(request, "error.html", status=422, refusal=Refusal(422, "bad_request", detail))

    app.add_exception_handler(WorkflowError, refused)
    app.add_exception_handler(Refusal, refused)
    app.add_exception_handler(RequestValidationError, invalid)
    return app
