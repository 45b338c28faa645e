"""`conveyor migrate --store URL --events kafka://…` creates the Kafka topics of every
workflow the store registered (``KeepsDefinitions``), with the events URL's ``partitions``
and ``replication``, and says what it created and what was there.

On librdkafka's mock cluster (the ``kafka`` fixture) there is no CreateTopics: the broker
advertises no such API, so the admin client refuses the call before sending anything
(``_UNSUPPORTED_FEATURE``). Checked here: ``migrate`` with the cluster's own CreateTopics
fails on the mock with that error, in one line. Everything else runs through the real
``conveyor migrate`` with the topic creation itself done by the mock's own C call
(``MockClusterAdmin``, put in place of ``KafkaTopicAdmin``): the topics of the registered
workflows, their names, partitions and replication (read back from the cluster's
metadata), and a second ``migrate`` finding them there. ``KafkaTopicAdmin``'s handling of
``TOPIC_ALREADY_EXISTS`` is not exercised against the mock; with ``CONVEYOR_TEST_KAFKA``
naming a real cluster these tests use ``KafkaTopicAdmin`` itself.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import uuid
from datetime import UTC, datetime
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from _kafka_support import KafkaCluster, MockClusterAdmin, kafka
from click.testing import CliRunner

from _services import unavailable

if find_spec("confluent_kafka") is None:
    unavailable(
        "Kafka", "confluent-kafka is not installed (pip install 'conveyor[kafka]')", module=True
    )

from confluent_kafka.admin import AdminClient

from conveyor import Builder, Run
from conveyor._connect import open_unchecked
from conveyor._registry import definition_document
from conveyor.abc import KeepsDefinitions
from conveyor.adapters.kafka import escape
from conveyor.cli import cli

__all__ = ["kafka"]

pytestmark = pytest.mark.kafka


class Status(enum.IntEnum):
    UNKNOWN = 0
    PLACED = 1
    PAID = 2
    SHIPPED = 3


async def _step(run: Run[dict[str, Any], Status]) -> Status:
    return Status.SHIPPED  # pragma: no cover - never run: the workflows only register


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


async def _register(url: str, *names: str) -> None:
    """Register the definitions of workflows ``names`` (PLACED -> PAID -> SHIPPED) in the
    store at ``url``, as each workflow does when it starts."""
    async with open_unchecked(url) as backend:
        store = backend.record_store
        assert isinstance(store, KeepsDefinitions)
        for name in names:
            b = Builder(name, dict, Status)
            b.add_step(Status.PLACED, _step, Status.PAID)
            b.add_step(Status.PAID, _step, Status.SHIPPED)
            wf = b.build(backend.streamer, store, backend.role_scheduler)
            document = definition_document(wf.definition)
            digest = hashlib.sha256(document.encode()).hexdigest()
            await store.register_definition(name, digest, document, datetime.now(UTC))


def _topics(name: str, prefix: str) -> list[str]:
    """The Kafka topics of a workflow of ``Status``, in the order migrate lists them."""
    clean = name.replace(" ", "_")
    topics = [f"{clean}-{int(s)}" for s in (Status.PLACED, Status.PAID, Status.SHIPPED)]
    topics += [f"{clean}-run-state-change", f"{clean}-delete"]
    return [escape(t, prefix) for t in topics]


def _metadata(kafka: KafkaCluster, topics: list[str]) -> dict[str, list[int]]:
    """Per topic that exists, the replica count of each of its partitions."""
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap, "log_level": 3})
    found = admin.list_topics(timeout=10).topics
    return {
        t: [len(p.replicas) for _, p in sorted(found[t].partitions.items())]
        for t in topics
        if t in found
    }


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A new SQLite store with its schema."""
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    code, out = invoke("migrate", "--store", url)
    assert code == 0, out
    return url


@pytest.fixture
def mock_admin(kafka: KafkaCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the mock cluster, topics are created through its process (it has no
    CreateTopics); on a real cluster, by ``KafkaTopicAdmin`` as configured."""
    mock = kafka.mock
    if mock is not None:

        def admin(bootstrap: str, *, timeout: float = 10.0) -> MockClusterAdmin:
            return MockClusterAdmin(mock)

        monkeypatch.setattr("conveyor.adapters.kafka._client.KafkaTopicAdmin", admin)


def _prefix() -> str:
    return f"mk{uuid.uuid4().hex[:8]}-"


@pytest.mark.usefixtures("mock_admin")
def test_migrate_creates_the_topics_of_every_registered_workflow(
    store: str, kafka: KafkaCluster
) -> None:
    # Given a store where two workflows registered their definitions
    asyncio.run(_register(store, "order flow", "refund.v2"))
    prefix = _prefix()
    events = f"{kafka.url}?prefix={prefix}&partitions=2&replication=3"
    wanted = _topics("order flow", prefix) + _topics("refund.v2", prefix)
    assert _metadata(kafka, wanted) == {}

    # When migrate runs with the events on Kafka
    code, out = invoke("migrate", "--store", store, "--events", events)

    # Then it says it created every topic of both, with the URL's partitions and
    # replication (the order: each workflow's statuses, run-state-change, delete)...
    assert code == 0, out
    schema, created = out.splitlines()
    assert schema.startswith("schema is up to date"), out
    assert created == (
        f"created {len(wanted)} Kafka topics (2 partitions, replication 3): " + ", ".join(wanted)
    ), out
    # ... and the cluster has them so
    assert _metadata(kafka, wanted) == {t: [3, 3] for t in wanted}


@pytest.mark.usefixtures("mock_admin")
def test_migrate_again_finds_the_topics_there_and_creates_only_missing_ones(
    store: str, kafka: KafkaCluster
) -> None:
    # Given the topics of a registered workflow, created by a first migrate
    asyncio.run(_register(store, "order flow"))
    prefix = _prefix()
    events = f"{kafka.url}?prefix={prefix}"
    code, out = invoke("migrate", "--store", store, "--events", events)
    assert code == 0, out
    first = _topics("order flow", prefix)

    # When a second workflow registers and migrate runs again, with other partitions
    asyncio.run(_register(store, "returns"))
    code, out = invoke("migrate", "--store", store, "--events", events + "&partitions=5")

    # Then it creates the new workflow's topics and says the others already exist, left
    # with the partitions they had
    assert code == 0, out
    _, created, there = out.splitlines()
    second = _topics("returns", prefix)
    assert created == (
        f"created 5 Kafka topics (5 partitions, replication 1): {', '.join(second)}"
    ), out
    assert there == f"5 Kafka topics already exist: {', '.join(first)}", out
    partitions = _metadata(kafka, first + second)
    assert {t: len(p) for t, p in partitions.items()} == {
        **{t: 3 for t in first},
        **{t: 5 for t in second},
    }


@pytest.mark.usefixtures("mock_admin")
def test_migrate_without_registered_workflows_says_it_created_no_topic(
    store: str, kafka: KafkaCluster
) -> None:
    code, out = invoke("migrate", "--store", store, "--events", f"{kafka.url}?prefix={_prefix()}")

    assert code == 0, out
    assert out.splitlines()[1] == (
        f"no Kafka topics created: no workflow has registered its definition in {store} yet "
        "(a workflow registers when it starts: run `conveyor migrate` again then, or start "
        "it once with create_topics=true)"
    ), out


def test_the_mock_cluster_refuses_create_topics_and_migrate_says_so_in_one_line(
    store: str, kafka: KafkaCluster
) -> None:
    if kafka.mock is None:
        pytest.skip("a real cluster has CreateTopics: the other tests use it")
    # Given a registered workflow, and KafkaTopicAdmin (the cluster's CreateTopics)
    asyncio.run(_register(store, "order flow"))
    prefix = _prefix()

    # When migrate runs against the mock cluster, which has no CreateTopics
    result = CliRunner().invoke(
        cli, ["migrate", "--store", store, "--events", f"{kafka.url}?prefix={prefix}"]
    )

    # Then it fails with the client's refusal, in one line, and nothing was created
    assert result.exit_code == 1, result.output
    (line,) = result.output.splitlines()
    first = _topics("order flow", prefix)[0]
    assert line.startswith(f"Error: Kafka failed while creating topic '{first}': "), line
    assert "_UNSUPPORTED_FEATURE" in line, line
    assert _metadata(kafka, _topics("order flow", prefix)) == {}
