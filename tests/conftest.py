"""Markers follow the fixtures: a test that uses a service's fixture carries its marker.

Test modules mark themselves (``pytestmark = pytest.mark.postgres``); this hook also marks
any test whose fixtures reach a service's fixture, so a new test cannot be left out of
``-m "not postgres"`` by forgetting the marker.
"""

from __future__ import annotations

import pytest

SERVICE_FIXTURES = {
    "pg_url": "postgres",
    "mysql_url": "mysql",
    "redis_url": "redis",
    "nats_url": "nats",
    "rabbitmq_url": "rabbitmq",
    "kafka": "kafka",
}
"""Fixture name -> the marker of the service it connects to."""


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = getattr(item, "fixturenames", ())
        for fixture, marker in SERVICE_FIXTURES.items():
            if fixture in names and item.get_closest_marker(marker) is None:
                item.add_marker(marker)
