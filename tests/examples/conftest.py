"""The examples' tests import the example files as modules (``import timeout``), and the SQL
example's test uses the adapters' throw-away databases (``tests/adapters/_pg_support.py``,
``_mysql_support.py``): both folders are made importable here, however the tests were
selected."""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent.parent
_EXAMPLES = str(_ROOT / "examples")
if _EXAMPLES not in sys.path:
    sys.path.insert(0, _EXAMPLES)
_ADAPTERS = str(_ROOT / "tests" / "adapters")
if _ADAPTERS not in sys.path:
    sys.path.append(_ADAPTERS)
