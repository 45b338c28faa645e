"""Settings of the Kafka adapters, from keyword arguments or the URL's query string.

``kafka://host1:9092,host2:9092?partitions=3&replication=3&create_topics=true``. Every
option is checked (type and range) when ``KafkaOptions`` is made, with the message format
of ``conveyor.adapters._values``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from ..._errors import AdapterError
from ..._urls import redact
from .._values import Kind, boolean, integer, numbers, query_options, text

__all__ = ["SCHEME", "KafkaOptions", "split_url"]

SCHEME: Final = "kafka"
_PREFIX = re.compile(r"^[A-Za-z0-9-]*$")
_SERVER = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d+$")


@dataclass(frozen=True, slots=True)
class KafkaOptions:
    """How the adapters use the Kafka cluster. Every field can also be given in the URL's
    query string; keyword arguments win. Durations are in seconds."""

    partitions: int = 3
    """Partitions of each topic the adapter creates (a topic that exists keeps its own)."""
    replication: int = 1
    """Replication factor of each topic the adapter creates (3 on a production cluster)."""
    create_topics: bool = False
    """Create a missing topic on first use (else a missing topic is an ``AdapterError``
    naming ``conveyor migrate``, which creates a registered workflow's topics)."""
    prefix: str = ""
    """Goes before every escaped topic name (``[A-Za-z0-9-]``), so that several
    installations share a cluster."""
    fetch_wait: float = 0.05
    """Longest time the broker holds a fetch that has no data (``fetch.wait.max.ms``):
    a bound on how late an idle receiver sees a new event on a cluster that does not
    answer a waiting fetch early."""
    linger: float = 0.002
    """How long the producer waits to batch messages (``linger.ms``). 2 ms, not 0: with
    0 every message went out in a request of its own as soon as it was queued, and the
    same 6,000 runs took about 0.8 s more of the worker's CPU and 0.5 s more of the
    cluster's; one process did 1,290-1,670 runs/s against 2,050-2,170 with 2 ms
    (``benchmarks/throughput.py`` on the mock cluster, alternating). A run's events wait
    up to this long on each hop."""
    request_timeout: float = 10.0
    """Longest wait for a metadata, offset or admin answer, and for a send's delivery."""
    commit_interval: float = 0.05
    """Acknowledged offsets are committed this soon after the acknowledgement (in one
    request for all the receiver's partitions), and at ``close``."""

    def __post_init__(self) -> None:
        integer("partitions", self.partitions, at_least=1)
        integer("replication", self.replication, at_least=1)
        boolean("create_topics", self.create_topics)
        text("prefix", self.prefix, max_bytes=64)
        if not _PREFIX.match(self.prefix):
            raise AdapterError(
                f"option prefix={self.prefix!r} may hold only ASCII letters, digits and hyphens"
            )
        numbers(
            {n: getattr(self, n) for n in ("fetch_wait", "linger", "commit_interval")},
            skip={},
            at_least={"fetch_wait": 0.0, "linger": 0.0, "commit_interval": 0.0},
            above={},
        )
        numbers(
            {"request_timeout": self.request_timeout},
            skip={},
            at_least={},
            above={"request_timeout": 0.0},
        )

    def replace(self, **changes: Any) -> KafkaOptions:
        """A copy with some fields changed (unknown names raise ``TypeError``)."""
        return dataclasses.replace(self, **changes)


_FIELDS = {f.name for f in dataclasses.fields(KafkaOptions)}
_KINDS: dict[str, Kind] = {
    "partitions": "integer",
    "replication": "integer",
    "create_topics": "boolean",
    "prefix": "text",
}


def split_url(url: str, options: dict[str, Any]) -> tuple[str, KafkaOptions]:
    """The bootstrap servers (``host:port,...``) and the options of a ``kafka://`` URL.

    Raises ``AdapterError`` for another URL or an unknown URL option, ``TypeError`` for an
    unknown keyword option.
    """
    parts = urlsplit(url)
    if parts.scheme != SCHEME:
        raise AdapterError(f"not a Kafka URL (kafka://host:9092): {redact(url)}")
    if "@" in parts.netloc:
        raise AdapterError(
            "a kafka:// URL takes no user or password (configure SASL on the client "
            f"instead): {redact(url)}"
        )
    servers = [s for s in parts.netloc.split(",") if s]
    if not servers or not all(_SERVER.match(s) for s in servers):
        raise AdapterError(
            f"a Kafka URL names its bootstrap servers (kafka://host:9092,...): {redact(url)}"
        )
    given = query_options(
        parts.query, options, fields=_FIELDS, kinds=_KINDS, scheme="kafka://", shown_url=redact(url)
    )
    return ",".join(servers), KafkaOptions(**given)
