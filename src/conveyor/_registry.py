"""What a running workflow tells its store about itself (``KeepsDefinitions``).

The document is what tools with only a store URL need to show a workflow (``conveyor ui``,
``conveyor runs``): status names and numbers, the graph's edges, and which statuses have
steps, callbacks and timeouts. Canonical JSON (sorted keys, no spaces), so one definition
always hashes the same, in every process.
"""

from __future__ import annotations

import enum
import hashlib
import json
from typing import TypeVar

from ._capabilities import DefinitionRecord, KeepsDefinitions
from ._clock import Clock
from ._definition import Definition
from ._protocols import RecordStore

__all__ = ["definition_document", "register"]

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)

DOCUMENT_VERSION = 1
"""The shape of the document (tools read ``format`` to know it)."""


def definition_document(definition: Definition[T, S]) -> str:
    """The canonical JSON of ``definition`` as tools see it."""
    graph = definition.graph
    document = {
        "format": DOCUMENT_VERSION,
        "name": definition.name,
        "object_type": definition.object_type.__qualname__,
        "status_type": definition.status_type.__qualname__,
        "statuses": {str(int(m)): m.name for m in definition.status_type},
        "nodes": [int(n) for n in graph.nodes],
        "edges": [[int(f), int(t)] for f, dests in graph.edges.items() for t in dests],
        "starting": [int(n) for n in graph.starting()],
        "terminal": [int(n) for n in graph.terminal()],
        "steps": sorted(int(s) for s in definition.steps),
        "callbacks": sorted(int(s) for s in definition.callbacks),
        "timeouts": sorted(int(s) for s in definition.timeouts),
        "hooks": sorted(str(state) for state in definition.hooks),
        "connectors": sorted(c.name for c in definition.connectors),
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


async def register(
    definition: Definition[T, S], store: RecordStore, clock: Clock
) -> DefinitionRecord | None:
    """Register ``definition`` with ``store`` if it keeps definitions (else ``None``)."""
    if not isinstance(store, KeepsDefinitions):
        return None
    document = definition_document(definition)
    digest = hashlib.sha256(document.encode()).hexdigest()
    return await store.register_definition(definition.name, digest, document, clock.now())
