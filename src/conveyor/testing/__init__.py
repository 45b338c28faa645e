"""Helpers for testing workflows without sleeping: fake clock, waits, idleness, test runs."""

from ._clock import FakeClock as FakeClock
from ._helpers import await_timeout_insert as await_timeout_insert
from ._helpers import new_testing_run as new_testing_run
from ._helpers import require as require
from ._helpers import run_until_idle as run_until_idle
from ._helpers import trigger_callback_on as trigger_callback_on
from ._helpers import wait_for as wait_for

__all__ = (
    "FakeClock",
    "await_timeout_insert",
    "new_testing_run",
    "require",
    "run_until_idle",
    "trigger_callback_on",
    "wait_for",
)
