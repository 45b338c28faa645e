"""Prometheus metrics with the original's names, labels and meaning (luno-behaviour.md §1.18)."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["LATENCY_BUCKETS", "Metrics", "ProcessMetrics"]

LATENCY_BUCKETS = (0.01, 0.1, 1.0, 5.0, 10.0, 60.0, 300.0)
_LABELS = ("workflow_name", "process_name")


@dataclass(frozen=True, slots=True)
class _Collectors:
    lag: Gauge
    lag_alert: Gauge
    states: Gauge
    latency: Histogram
    errors: Counter
    skipped: Counter
    run_state_changes: Counter
    waits: Counter
    abandoned_threads: Gauge
    stalls: Counter


_BY_REGISTRY: weakref.WeakKeyDictionary[CollectorRegistry, _Collectors] = (
    weakref.WeakKeyDictionary()
)
_LOCK = threading.Lock()


def _collectors(registry: CollectorRegistry) -> _Collectors:
    with _LOCK:
        found = _BY_REGISTRY.get(registry)
        if found is None:
            found = _BY_REGISTRY[registry] = _Collectors(
                lag=Gauge(
                    "workflow_process_lag_seconds",
                    "Age of the last event consumed by the process (business time)",
                    _LABELS,
                    registry=registry,
                ),
                lag_alert=Gauge(
                    "workflow_process_lag_alert",
                    "1 if the process lag is above its lag alert threshold, else 0",
                    _LABELS,
                    registry=registry,
                ),
                states=Gauge(
                    "workflow_process_states",
                    "Process state: 0 unknown, 1 shutdown, 2 running, 3 idle",
                    _LABELS,
                    registry=registry,
                ),
                latency=Histogram(
                    "workflow_process_latency_seconds",
                    "Time to handle an event",
                    _LABELS,
                    buckets=LATENCY_BUCKETS,
                    registry=registry,
                ),
                errors=Counter(
                    "workflow_process_error_count",
                    "Process errors that caused a backoff",
                    _LABELS,
                    registry=registry,
                ),
                skipped=Counter(
                    "workflow_process_skipped_events_count",
                    "Events a process acknowledged without acting, by reason",
                    (*_LABELS, "reason"),
                    registry=registry,
                ),
                run_state_changes=Counter(
                    "workflow_run_state_changes",
                    "Run-state changes written by the engine",
                    ("workflow_name", "previous_run_state", "current_run_state"),
                    registry=registry,
                ),
                abandoned_threads=Gauge(
                    "workflow_abandoned_threads",
                    "Threads of sync attempts that passed their attempt_timeout and still run",
                    ("workflow_name",),
                    registry=registry,
                ),
                stalls=Counter(
                    "workflow_event_loop_stalls",
                    "Times the event loop did not turn for the workflow's stall_threshold",
                    ("workflow_name",),
                    registry=registry,
                ),
                waits=Counter(
                    "workflow_waits",
                    "Waits that returned a run, by what found it: the first store read "
                    "('store') or an event ('event')",
                    ("workflow_name", "found_by"),
                    registry=registry,
                ),
            )
        return found


class Metrics:
    """The metrics of one workflow, on ``registry`` (default: the global registry).

    Several workflows may share a registry; each labels its series with its name.
    """

    def __init__(self, workflow_name: str, registry: CollectorRegistry | None = None) -> None:
        self.workflow_name = workflow_name
        self.registry: CollectorRegistry = registry if registry is not None else REGISTRY
        self._c = _collectors(self.registry)
        self._changes: dict[tuple[str, str], Counter] = {}
        self.waits_found_by_store: Counter = self._c.waits.labels(workflow_name, "store")
        """Waits that returned from their first store read (the run was there already)."""
        self.waits_found_by_event: Counter = self._c.waits.labels(workflow_name, "event")
        """Waits that returned after an event of their run."""

    def stalled(self) -> None:
        """The event loop stalled once more (counted by the watchdog's thread)."""
        self._c.stalls.labels(self.workflow_name).inc()

    def count_abandoned(self, count: Callable[[], int]) -> None:
        """Report ``count()`` as the workflow's abandoned threads when scraped."""
        self._c.abandoned_threads.labels(self.workflow_name).set_function(count)

    def process(self, process_name: str) -> ProcessMetrics:
        return ProcessMetrics(self._c, self.workflow_name, process_name)

    def run_state_change(self, previous: str, current: str) -> None:
        key = (previous, current)
        child = self._changes.get(key)
        if child is None:
            child = self._changes[key] = self._c.run_state_changes.labels(
                self.workflow_name, previous, current
            )
        child.inc()


class ProcessMetrics:
    """The series of one process, with label lookups done once."""

    __slots__ = ("_c", "_labels", "_skipped", "errors", "lag", "lag_alert", "latency", "state")

    def __init__(self, c: _Collectors, workflow_name: str, process_name: str) -> None:
        self._c = c
        self._labels = (workflow_name, process_name)
        self.lag: Gauge = c.lag.labels(*self._labels)
        self.lag_alert: Gauge = c.lag_alert.labels(*self._labels)
        self.state: Gauge = c.states.labels(*self._labels)
        self.latency: Histogram = c.latency.labels(*self._labels)
        self.errors: Counter = c.errors.labels(*self._labels)
        self._skipped: dict[str, Counter] = {}

    def skipped(self, reason: str) -> None:
        child = self._skipped.get(reason)
        if child is None:
            child = self._skipped[reason] = self._c.skipped.labels(*self._labels, reason)
        child.inc()

    def observe_lag(self, lag: float, alert_after: float) -> None:
        self.lag.set(lag)
        if alert_after > 0:
            self.lag_alert.set(1.0 if lag > alert_after else 0.0)
