"""One URL configures all four adapters: ``conveyor.connect("sqlite:///orders.db")``."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ._errors import AdapterError
from ._protocols import EventStreamer, RecordStore, RoleScheduler, TimeoutStore

__all__ = ["Backend", "connect", "migrate", "register_backend"]


@dataclass(frozen=True, slots=True)
class Backend:
    """The four adapters a workflow is built on, opened together from one URL."""

    url: str
    streamer: EventStreamer
    record_store: RecordStore
    role_scheduler: RoleScheduler
    timeout_store: TimeoutStore


Opener = Callable[..., AbstractAsyncContextManager[Backend]]

# scheme -> "module:function"; imported only when used, so no driver is needed up front.
_OPENERS: dict[str, str] = {
    "memory": "conveyor.adapters.memory:open_backend",
    "sqlite": "conveyor.adapters.sqlite:open_backend",
    "postgresql": "conveyor.adapters.postgres:open_backend",
    "postgres": "conveyor.adapters.postgres:open_backend",
}
_EXTRAS = {"sqlite": "sqlite", "postgresql": "postgres", "postgres": "postgres"}


def register_backend(scheme: str, opener: str) -> None:
    """Let ``connect`` open ``scheme://`` URLs with ``opener`` (``"module:function"``)."""
    _OPENERS[scheme] = opener


def _backend_module(url: str) -> tuple[Any, str]:
    scheme = urlsplit(url).scheme
    if not scheme:
        raise AdapterError(
            f"not a backend URL: {url!r} (expected e.g. memory://, sqlite:///path/to/file.db, "
            "postgresql://user@host/db)"
        )
    target = _OPENERS.get(scheme)
    if target is None:
        known = ", ".join(f"{s}://" for s in sorted(_OPENERS))
        raise AdapterError(f"unknown backend scheme {scheme!r} in {url!r} (known: {known})")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = _EXTRAS.get(scheme)
        hint = f": pip install 'conveyor[{extra}]'" if extra else ""
        raise AdapterError(f"cannot open {scheme}:// backends{hint} ({exc})") from exc
    return module, attr


def _opener(url: str) -> Opener:
    module, attr = _backend_module(url)
    opener: Opener = getattr(module, attr)
    return opener


@asynccontextmanager
async def connect(url: str, **options: Any) -> AsyncIterator[Backend]:
    """Open the streamer, record store, role scheduler and timeout store for ``url``.

    ``memory://`` (in-process), ``sqlite:///relative.db`` or ``sqlite:////abs/path.db``,
    ``postgresql://user:password@host:5432/db``. ``options`` go to the backend. Closing
    the context closes the connections. Raises ``AdapterError`` for a bad URL.
    """
    async with _opener(url)(url, **options) as backend:
        yield backend


async def migrate(url: str, **options: Any) -> None:
    """Create or upgrade the backend's schema (``conveyor migrate --store URL``).

    Idempotent. Backends without a schema (``memory://``) do nothing.
    """
    module, _ = _backend_module(url)
    run = getattr(module, "migrate", None)
    if run is not None:
        await run(url, **options)
