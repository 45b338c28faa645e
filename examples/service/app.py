"""The order service's HTTP API: an API process in client mode (it runs no step).

Run it from this folder with ``uvicorn app:app``; the store is ``$ORDERS_STORE``
(default ``sqlite:///orders.db``). The work is done by ``conveyor worker orders:builder``
processes on the same store (see README.md).

    POST /orders                          {"order_id": "o-1", "item": "book"} -> {"run_id"}
    GET  /orders/{order_id}/{run_id}      the order now
    GET  /orders/{order_id}/{run_id}?wait=SHIPPED&timeout=10
                                          the order once it is SHIPPED (504 if not in time)
    POST /webhooks/payment/{order_id}     {"paid": true} -> the order (409 if it is not
                                          awaiting payment, with the reason; 404 if unknown)
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from pydantic import BaseModel, Field

import conveyor
from conveyor import (
    CallbackRejected,
    RecordNotFound,
    Run,
    RunEnded,
    WorkflowClient,
    WorkflowInProgress,
)
from orders import Order, Status, workflow

STORE = os.environ.get("ORDERS_STORE", "sqlite:///orders.db")

OrdersClient = WorkflowClient[Order, Status]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the store and the workflow's client for the life of the process."""
    async with conveyor.connect(STORE) as backend, workflow(backend).client() as client:
        app.state.orders = client
        yield


app = FastAPI(title="orders", lifespan=lifespan)


def orders_client(request: Request) -> OrdersClient:
    client: OrdersClient = request.app.state.orders
    return client


Client = Annotated[OrdersClient, Depends(orders_client)]


class NewOrder(BaseModel):
    order_id: str = Field(min_length=1)
    item: str
    quantity: int = Field(default=1, ge=1)


class PaymentEvent(BaseModel):
    paid: bool


def view(run: Run[Order, Status]) -> dict[str, Any]:
    return {
        "order_id": run.foreign_id,
        "run_id": run.run_id,
        "status": run.status.name,
        "run_state": str(run.run_state),
        "version": run.version,
        "order": dataclasses.asdict(run.object),
    }


@app.get("/healthz")
async def healthz() -> dict[str, bool]:
    return {"ok": True}


@app.post("/orders", status_code=201)
async def create_order(body: NewOrder, client: Client) -> dict[str, str]:
    order = Order(item=body.item, quantity=body.quantity)
    try:
        run_id = await client.trigger(body.order_id, initial=order)
    except WorkflowInProgress as exc:
        raise HTTPException(409, str(exc)) from exc
    return {"order_id": body.order_id, "run_id": run_id}


@app.get("/orders/{order_id}/{run_id}")
async def get_order(
    order_id: str,
    run_id: str,
    client: Client,
    wait: str | None = None,
    timeout: Annotated[float, Query(gt=0, le=60)] = 10.0,
) -> dict[str, Any]:
    if wait is None:
        try:
            run = await client.lookup(run_id)
        except RecordNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        if run.foreign_id != order_id:
            raise HTTPException(404, f"order {order_id!r} has no run {run_id!r}")
        return view(run)
    status = Status.__members__.get(wait)
    if status is None or status is Status.UNKNOWN:
        names = ", ".join(s.name for s in Status if s is not Status.UNKNOWN)
        raise HTTPException(422, f"wait: expected one of {names}")
    try:
        async with asyncio.timeout(timeout):
            run = await client.wait(order_id, run_id, status)
    except RecordNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except RunEnded as exc:  # it finished at another status
        raise HTTPException(409, str(exc)) from exc
    except TimeoutError as exc:
        raise HTTPException(504, f"order {order_id!r} is not {wait} after {timeout:g}s") from exc
    return view(run)


@app.post("/webhooks/payment/{order_id}")
async def payment_webhook(order_id: str, body: PaymentEvent, client: Client) -> dict[str, Any]:
    """The payment provider calls this; it retries until it gets a 2xx."""
    payload = body.model_dump_json().encode()
    try:
        run = await client.callback(order_id, Status.AWAITING_PAYMENT, payload)
    except RecordNotFound as exc:
        raise HTTPException(404, f"no order {order_id!r}") from exc
    except CallbackRejected as exc:  # not (or no longer) awaiting payment
        detail = {
            "reason": exc.reason,
            "status": Status(exc.record.status).name,
            "message": str(exc),
        }
        raise HTTPException(409, detail) from exc
    return view(run)
