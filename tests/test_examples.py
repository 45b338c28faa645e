"""Every example in examples/ runs as written, and says what its docs page shows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.py"))

EXPECTED = {
    "getting_started.py": "DONE Completed User(uid='user-42', email='user-42@example.com')",
    "callback.py": "right code: CONFIRMED Completed version=3",
    "timeout.py": "reset-2: EXPIRED at 2024-03-01T09:15:00+00:00",
    "schedule.py": "report for 2024-01-08: PUBLISHED, 42 lines",
    "connector.py": "payout-1 SETTLED runs=1 Transfer(amount=250, reference='stl-1')",
    "order_processor.py": "order-4: PAYMENT_EXPIRED  Completed",
    "sql.py": "inv-3 2024-inv-3: PAID Completed v3",
    "web_ui.py": "parcel-late  mirror  PLACED   Cancelled duplicate of parcel-3",
    "timeouts_and_schedules.py": "order-1: EXPIRED at 2024-01-01T09:30:00+00:00",
    "connectors_and_metrics.py": "stateDiagram-v2",
}
"""A line of each example's output (each docs page shows it)."""


@pytest.mark.processes
@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_example_runs(example: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    assert EXPECTED[example.name] in proc.stdout


def test_every_example_says_what_it_prints() -> None:
    assert sorted(EXPECTED) == sorted(e.name for e in EXAMPLES)
