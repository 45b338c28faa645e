"""The CLI's PostgreSQL tests share the adapters' throw-away database
(``tests/adapters/_pg_support.py``, imported as ``_pg_support`` as the adapters' tests do):
its directory is made importable here, however the tests were selected."""

from __future__ import annotations

import sys
from pathlib import Path

_ADAPTERS = str(Path(__file__).resolve().parent.parent / "adapters")
if _ADAPTERS not in sys.path:
    sys.path.append(_ADAPTERS)
