"""The OpenAPI document at /api/openapi.json describes the API's routes as they answer.

Schemathesis generates requests from the document (every route, valid and invalid input)
and checks each answer against it: status codes declared, bodies matching their schemas,
no server errors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from conveyor import connect
from conveyor.web import create_app
from conveyor.web._api import router as api_router

from ._seed import seed
from .conftest import AUTH, TOKEN


@pytest.fixture(scope="module")
def app() -> Iterator[FastAPI]:
    loop = asyncio.new_event_loop()
    backend_cm = connect("memory://")
    backend = loop.run_until_complete(backend_cm.__aenter__())
    loop.run_until_complete(seed(backend))
    made = create_app(backend.record_store, token=TOKEN, allowed_hosts=["testserver"])
    assert isinstance(made, FastAPI)
    yield made
    loop.run_until_complete(backend_cm.__aexit__(None, None, None))
    loop.close()


def test_the_document_lists_exactly_the_api_routes(app: FastAPI) -> None:
    document: dict[str, Any] = app.openapi()
    documented = {
        (method.upper(), path) for path, ops in document["paths"].items() for method in ops
    }
    routed = {
        (method, route.path)
        for route in api_router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }
    assert documented == routed
    assert len(routed) == 6
    assert all(path.startswith("/api/") for _, path in documented)


@pytest.fixture(scope="module")
def api_schema(app: FastAPI) -> Any:  # Any: schemathesis's schema object
    return schemathesis.openapi.from_asgi("/api/openapi.json", app)


OPERATIONS = [
    "GET /api/workflows",
    "GET /api/runs",
    "GET /api/runs/{run_id}",
    "GET /api/runs/{run_id}/history",
    "POST /api/runs/{run_id}/{action}",
    "POST /api/bulk/{action}",
]


@pytest.mark.parametrize("label", OPERATIONS)
def test_every_route_answers_as_documented(api_schema: Any, label: str) -> None:
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, label

    @given(case=operation.as_strategy())
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        # Status names, cursors and run IDs are valid or not by the data, not the schema:
        # a name no workflow has is a 400 with a reason, so acceptance is not checked.
        case.call_and_validate(headers=AUTH, excluded_checks=[positive_data_acceptance])

    check()
