"""The status graph: which status may follow which.

``GraphBuilder`` collects edges while a workflow is declared; ``build()`` freezes them
into a ``Graph``, which never changes afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["Graph", "GraphBuilder"]


class GraphBuilder:
    """Directed edges between user statuses, in insertion order (mutable)."""

    __slots__ = ("_edges", "_nodes")

    def __init__(self) -> None:
        self._nodes: dict[int, None] = {}
        self._edges: dict[int, dict[int, None]] = {}

    def add(self, from_: int, to: int) -> None:
        self._nodes.setdefault(from_)
        self._nodes.setdefault(to)
        self._edges.setdefault(from_, {})[to] = None

    def freeze(self) -> Graph:
        """An immutable copy of the edges so far."""
        return Graph(
            tuple(self._nodes),
            MappingProxyType({src: tuple(dests) for src, dests in self._edges.items()}),
        )


@dataclass(frozen=True, slots=True)
class Graph:
    """Directed edges between user statuses, in insertion order (immutable)."""

    nodes: tuple[int, ...]
    """Every status, in the order first seen."""
    edges: Mapping[int, tuple[int, ...]]
    """Each source status's destinations, in insertion order."""

    def destinations(self, from_: int) -> tuple[int, ...]:
        """Statuses ``from_`` may move to, in insertion order."""
        return self.edges.get(from_, ())

    def sources(self) -> list[int]:
        """Statuses with outgoing edges, in insertion order."""
        return list(self.edges)

    def allows(self, from_: int, to: int) -> bool:
        """Whether the graph has the edge ``from_ -> to``."""
        return to in self.edges.get(from_, ())

    def is_terminal(self, status: int) -> bool:
        """A node that is never the source of an edge."""
        return status in self.nodes and status not in self.edges

    def terminal(self) -> list[int]:
        """Every terminal node, in insertion order."""
        return [n for n in self.nodes if n not in self.edges]

    def starting(self) -> list[int]:
        """Nodes that are never the destination of an edge, in insertion order."""
        targets = {t for dests in self.edges.values() for t in dests}
        return [n for n in self.nodes if n not in targets]

    def __contains__(self, status: object) -> bool:
        return status in self.nodes
