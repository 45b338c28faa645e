"""Options for background processes, merged field by field over defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import timedelta

__all__ = ["Options", "OutboxOptions", "ResolvedOptions", "seconds"]

Duration = float | timedelta


def seconds(value: Duration | None) -> float | None:
    """A duration in seconds (``timedelta`` accepted); ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"a duration must be seconds (float) or a timedelta, not {value!r}")
    return float(value)


_DURATIONS = ("polling_frequency", "err_backoff", "lag_alert", "consume_lag", "attempt_timeout")


@dataclass(frozen=True, slots=True)
class Options:
    """Per-process options. ``None`` means "not set": the defaults fill it in.

    Durations are seconds (a ``timedelta`` is accepted too).
    """

    parallel_count: int | None = None
    """How many shards (processes) consume the step's topic."""
    polling_frequency: Duration | None = None
    """Longest wait between looks at a backend that has no push notifications."""
    err_backoff: Duration | None = None
    """Base of the exponential backoff (with jitter) after a failed attempt."""
    lag_alert: Duration | None = None
    """Lag above which the lag-alert metric is raised."""
    consume_lag: Duration | None = None
    """Hold each event until it is this old (by the workflow's clock)."""
    pause_after_err_count: int | None = None
    """Pause a run after this many failed attempts at one version (0 disables)."""
    attempt_timeout: Duration | None = None
    """Longest an attempt of a step, timeout or hook may take; a longer one fails (an async
    one is cancelled; a sync one is abandoned in its thread). 0, the default, is no limit."""

    def __post_init__(self) -> None:
        for name in _DURATIONS:
            value = seconds(getattr(self, name))
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")
            object.__setattr__(self, name, value)
        for name in ("parallel_count", "pause_after_err_count"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")

    def over(self, base: Options) -> Options:
        """These options with every unset field taken from ``base``."""
        changes = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None
        }
        return dataclasses.replace(base, **changes)

    def resolve(self) -> ResolvedOptions:
        """Fill what is still unset with conveyor's defaults (luno-behaviour.md §4.5)."""
        consume_lag = float(self.consume_lag or 0.0)  # type: ignore[arg-type]
        lag_alert = self.lag_alert
        if lag_alert is None:
            lag_alert = 30 * 60.0 + consume_lag
        return ResolvedOptions(
            parallel_count=max(1, self.parallel_count or 1),
            polling_frequency=float(self.polling_frequency or 0.5),  # type: ignore[arg-type]
            err_backoff=float(self.err_backoff if self.err_backoff is not None else 1.0),  # type: ignore[arg-type]
            lag_alert=float(lag_alert),  # type: ignore[arg-type]
            consume_lag=consume_lag,
            pause_after_err_count=self.pause_after_err_count or 0,
            attempt_timeout=float(self.attempt_timeout or 0.0),  # type: ignore[arg-type]
        )


@dataclass(frozen=True, slots=True)
class ResolvedOptions:
    """Options with every field decided."""

    parallel_count: int
    polling_frequency: float
    err_backoff: float
    lag_alert: float
    consume_lag: float
    pause_after_err_count: int
    attempt_timeout: float = 0.0


@dataclass(frozen=True, slots=True)
class OutboxOptions:
    """Options of the outbox relay.

    The relay is woken by writes; ``polling_frequency`` is only the fallback for a backend
    whose notifications were lost.
    """

    polling_frequency: float = 0.25
    err_backoff: float = 0.5
    lag_alert: float = 60.0
    lookup_limit: int = 1000

    def __post_init__(self) -> None:
        for name in ("polling_frequency", "err_backoff", "lag_alert"):
            value = seconds(getattr(self, name))
            if value is None or value < 0:
                raise ValueError(f"{name} must be a non-negative duration")
            object.__setattr__(self, name, value)
        if self.lookup_limit < 1:
            raise ValueError("lookup_limit must be at least 1")
