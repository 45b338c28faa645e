"""Optional OpenTelemetry spans (``conveyor[otel]``), with trace context in event headers.

``trigger`` writes the caller's trace context into the run's first event (W3C
``traceparent``/``tracestate`` headers). Each step attempt runs in a span whose parent is
the context of the event that started it, and the writes it makes carry that span's
context on, so every step of a run lands in the trace of the code that triggered it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from ._errors import BuildError

__all__ = ["NoTracing", "OtelTracing", "Tracing", "make_tracing"]


class NoTracing:
    """Tracing turned off: every call is a no-op."""

    enabled = False

    def inject(self, headers: MutableMapping[str, str]) -> None:
        return None

    @contextlib.contextmanager
    def span(
        self, name: str, parent: Mapping[str, str] | None = None, **attributes: Any
    ) -> Iterator[None]:
        yield


class OtelTracing:
    """Spans through the OpenTelemetry API (an SDK, if configured, exports them)."""

    enabled = True

    def __init__(self, tracer_provider: Any = None) -> None:
        try:
            from opentelemetry import propagate, trace
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise BuildError("tracing needs OpenTelemetry: pip install 'conveyor[otel]'") from exc
        self._propagate = propagate
        self._trace = trace
        self._tracer = trace.get_tracer("conveyor", tracer_provider=tracer_provider)

    def inject(self, headers: MutableMapping[str, str]) -> None:
        self._propagate.inject(headers)

    @contextlib.contextmanager
    def span(
        self, name: str, parent: Mapping[str, str] | None = None, **attributes: Any
    ) -> Iterator[None]:
        context = self._propagate.extract(parent) if parent is not None else None
        with self._tracer.start_as_current_span(name, context=context) as span:
            for key, value in attributes.items():
                span.set_attribute(f"conveyor.{key}", value)
            yield


Tracing = NoTracing | OtelTracing


def make_tracing(enabled: bool, tracer_provider: object | None = None) -> Tracing:
    return OtelTracing(tracer_provider) if enabled else NoTracing()
