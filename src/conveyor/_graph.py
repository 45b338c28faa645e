"""The status graph: which status may follow which."""

from __future__ import annotations

__all__ = ["Graph"]


class Graph:
    """Directed edges between user statuses, in insertion order."""

    __slots__ = ("_edges", "_nodes")

    def __init__(self) -> None:
        self._nodes: dict[int, None] = {}
        self._edges: dict[int, dict[int, None]] = {}

    def add(self, from_: int, to: int) -> None:
        self._nodes.setdefault(from_)
        self._nodes.setdefault(to)
        self._edges.setdefault(from_, {})[to] = None

    @property
    def nodes(self) -> list[int]:
        """Every status, in the order first seen."""
        return list(self._nodes)

    def destinations(self, from_: int) -> list[int]:
        """Statuses ``from_`` may move to, in insertion order."""
        return list(self._edges.get(from_, ()))

    def sources(self) -> list[int]:
        """Statuses with outgoing edges, in insertion order."""
        return list(self._edges)

    def allows(self, from_: int, to: int) -> bool:
        edges = self._edges.get(from_)
        return edges is not None and to in edges

    def is_terminal(self, status: int) -> bool:
        """A node that is never the source of an edge."""
        return status in self._nodes and status not in self._edges

    def terminal(self) -> list[int]:
        return [n for n in self._nodes if n not in self._edges]

    def starting(self) -> list[int]:
        """Nodes that are never the destination of an edge, in insertion order."""
        targets = {t for edges in self._edges.values() for t in edges}
        return [n for n in self._nodes if n not in targets]

    def __contains__(self, status: object) -> bool:
        return status in self._nodes
