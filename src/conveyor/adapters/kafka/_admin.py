"""Creating topics: ``TopicAdmin`` (how), ``KafkaTopicAdmin`` (the cluster's CreateTopics).

Topics are created explicitly, never by the broker's auto-creation (every client of the
adapters sets ``allow.auto.create.topics=false``): by ``conveyor migrate`` for the
workflows a deployment registered, or on first use when ``create_topics`` is set.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from ._errors import error_of, translate

__all__ = ["KafkaTopicAdmin", "TopicAdmin", "TopicSpec"]


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A Kafka topic to create (its escaped name) with its partitions and replication."""

    name: str
    partitions: int
    replication: int


@runtime_checkable
class TopicAdmin(Protocol):
    """Creates Kafka topics. ``KafkaTopicAdmin`` asks the cluster; pass another to create
    them some other way (a platform's API, a test cluster's own controls)."""

    async def create_topics(self, topics: Sequence[TopicSpec]) -> Sequence[str]:
        """Create each topic that does not exist; one that exists is left as it is (with
        its own partitions and replication). The names of the topics it created.

        Raises ``AdapterError`` (``AdapterUnavailable`` if the cluster does not answer).
        """
        ...

    async def close(self) -> None:
        """Release what the admin holds. Idempotent."""
        ...


def _already_exists(exc: BaseException) -> bool:
    """Whether a CreateTopics failure says the topic exists (``TOPIC_ALREADY_EXISTS``)."""
    error = error_of(exc)
    return error is not None and error.code() == KafkaError.TOPIC_ALREADY_EXISTS


class KafkaTopicAdmin:
    """``TopicAdmin`` through the cluster's CreateTopics request (librdkafka's admin client,
    on a thread of its own: its calls block)."""

    def __init__(self, bootstrap: str, *, timeout: float = 10.0) -> None:
        self._config: dict[str, str | int | float | bool] = {
            "bootstrap.servers": bootstrap,
            "log_level": 3,
        }
        self._timeout = timeout
        self._client: AdminClient | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="conveyor-kafka-admin")

    async def create_topics(self, topics: Sequence[TopicSpec]) -> Sequence[str]:
        if not topics:
            return []
        loop = asyncio.get_running_loop()
        created: list[str] = await loop.run_in_executor(self._thread, self._create, list(topics))
        return created

    def _create(self, topics: list[TopicSpec]) -> list[str]:
        if self._client is None:
            self._client = AdminClient(self._config)
        new = [NewTopic(t.name, t.partitions, t.replication) for t in topics]
        futures = self._client.create_topics(new, request_timeout=self._timeout)
        created: list[str] = []
        for name, future in futures.items():
            try:
                future.result(timeout=self._timeout + 1)
            except KafkaException as exc:
                if _already_exists(exc):
                    continue
                raise translate(exc, f"creating topic {name!r}") from exc
            except TimeoutError as exc:
                raise translate(exc, f"creating topic {name!r}") from exc
            created.append(name)
        return [t.name for t in topics if t.name in created]

    async def close(self) -> None:
        self._client = None
        self._thread.shutdown(wait=False)
