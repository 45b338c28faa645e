"""The Kafka cluster for the test run: a librdkafka mock cluster in a process of its own.

There is no Kafka broker here, so a session fixture starts ``_kafka_mock.py`` (librdkafka's
mock cluster, which speaks the Kafka protocol on loopback) and every test, and the worker
processes of the crash test, connect to its bootstrap address. ``CONVEYOR_TEST_KAFKA``
names a real cluster instead. Without confluent-kafka, or when the mock does not start,
the Kafka tests are skipped with the reason, unless ``CI=true``: then they fail
(``_services``). Tests that use ``kafka`` carry the ``kafka`` marker.

The mock has no CreateTopics, so topics are created through its process
(``MockClusterAdmin``, a ``TopicAdmin``); against a real cluster ``KafkaTopicAdmin`` is used.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from typing import TYPE_CHECKING

import pytest

from _services import unavailable

if TYPE_CHECKING:
    from conveyor.adapters.kafka import TopicAdmin, TopicSpec

# Checked by the fixture, not at import: modules that test other brokers import it too.
_DRIVER = find_spec("confluent_kafka") is not None

__all__ = ["KafkaCluster", "MockCluster", "MockClusterAdmin", "kafka", "start_mock"]

MOCK_SCRIPT = pathlib.Path(__file__).with_name("_kafka_mock.py")
TOPIC_ALREADY_EXISTS = 36
"""The Kafka error code the mock's topic creation returns for a topic that exists."""


class MockCluster:
    """A running ``_kafka_mock.py``: its bootstrap address and topic creation."""

    def __init__(self, process: subprocess.Popen[str], bootstrap: str) -> None:
        self.process = process
        self.bootstrap = bootstrap
        self._lock = threading.Lock()

    def create(self, topic: str, partitions: int, replication: int = 1) -> bool:
        """Create ``topic``: ``True``, or ``False`` if it exists (left as it is). Raises
        ``RuntimeError`` on another failure."""
        try:
            self._command(f"create {topic} {partitions} {replication}", f"create {topic!r}")
        except RuntimeError as exc:
            if str(exc).endswith(f"error {TOPIC_ALREADY_EXISTS}"):
                return False
            raise
        return True

    @property
    def brokers(self) -> range:
        """The brokers' ids (1 to ``BROKERS`` of ``_kafka_mock.py``, in the bootstrap's
        order)."""
        return range(1, len(self.bootstrap.split(",")) + 1)

    @property
    def ports(self) -> set[int]:
        """The TCP ports the brokers listen on."""
        return {int(server.rpartition(":")[2]) for server in self.bootstrap.split(",")}

    def set_down(self, broker: int) -> None:
        """Close every client connection to broker ``broker`` (1 to ``BROKERS``) and refuse
        new ones until ``set_up``."""
        self._command(f"down {broker}", f"take broker {broker} down")

    def set_up(self, broker: int) -> None:
        """Let clients connect to broker ``broker`` again."""
        self._command(f"up {broker}", f"bring broker {broker} up")

    def _command(self, line: str, what: str) -> None:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        with self._lock:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
            answer = self.process.stdout.readline().strip()
        if answer != "ok":
            raise RuntimeError(f"mock cluster could not {what}: {answer or 'gone'}")

    def stop(self) -> None:
        """Close its stdin (it exits) and wait for it."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(10)
            if self.process.stdout is not None:
                self.process.stdout.close()
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_mock() -> MockCluster:
    """Start a mock cluster process. Raises ``RuntimeError`` if it does not come up."""
    process = subprocess.Popen(
        [sys.executable, str(MOCK_SCRIPT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    bootstrap = process.stdout.readline().strip()
    if not bootstrap:
        process.kill()
        process.wait()
        raise RuntimeError("the librdkafka mock cluster did not start")
    return MockCluster(process, bootstrap)


class MockClusterAdmin:
    """``TopicAdmin`` through the mock cluster's process (it has no CreateTopics)."""

    def __init__(self, cluster: MockCluster) -> None:
        self._cluster = cluster

    async def create_topics(self, topics: Sequence[TopicSpec]) -> list[str]:
        import asyncio

        created = []
        for spec in topics:
            create = self._cluster.create
            if await asyncio.to_thread(create, spec.name, spec.partitions, spec.replication):
                created.append(spec.name)
        return created

    async def close(self) -> None:
        return None


@dataclass(frozen=True)
class KafkaCluster:
    """Where the tests' cluster is, and how topics are created on it."""

    bootstrap: str
    mock: MockCluster | None

    @property
    def url(self) -> str:
        """``kafka://<bootstrap>`` (add options with ``?``)."""
        return f"kafka://{self.bootstrap}"

    def admin(self) -> TopicAdmin:
        """A ``TopicAdmin`` for this cluster."""
        from conveyor.adapters.kafka import KafkaTopicAdmin

        if self.mock is not None:
            return MockClusterAdmin(self.mock)
        return KafkaTopicAdmin(self.bootstrap)


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaCluster]:
    """The session's Kafka cluster; skips (fails with CI=true) without one."""
    if not _DRIVER:
        unavailable("Kafka", "confluent-kafka is not installed (pip install 'conveyor[kafka]')")
    real = os.environ.get("CONVEYOR_TEST_KAFKA")
    if real:
        yield KafkaCluster(real, None)
        return
    try:
        mock = start_mock()
    except (OSError, RuntimeError) as exc:
        unavailable("Kafka", f"the librdkafka mock cluster did not start: {exc!r}")
    try:
        yield KafkaCluster(mock.bootstrap, mock)
    finally:
        mock.stop()
