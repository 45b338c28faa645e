"""The demo's workflow: an order is validated, stock is reserved, then it is paid and
shipped, or its payment times out."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from datetime import datetime

from .._builder import Builder
from .._record import Run
from .._timers import duration_timer

__all__ = ["Order", "OrderStatus", "order_builder"]


class OrderStatus(enum.IntEnum):
    UNKNOWN = 0
    PLACED = 1
    VALIDATED = 2
    AWAITING_PAYMENT = 3
    PAID = 4
    SHIPPED = 5
    REJECTED = 6
    PAYMENT_TIMED_OUT = 7


@dataclass
class Order:
    item: str = ""
    quantity: int = 0
    handled_by: list[str] = field(default_factory=list)


def _note(run: Run[Order, OrderStatus], what: str) -> None:
    run.object.handled_by.append(f"{os.getpid()}:{what}")


async def validate(run: Run[Order, OrderStatus]) -> OrderStatus:
    _note(run, "validate")
    if not 0 < run.object.quantity <= 5:
        return OrderStatus.REJECTED
    return OrderStatus.VALIDATED


def reserve_stock(run: Run[Order, OrderStatus]) -> OrderStatus:  # a blocking call: a thread
    _note(run, "reserve")
    return OrderStatus.AWAITING_PAYMENT


def payment_received(run: Run[Order, OrderStatus], payload: bytes) -> OrderStatus:
    _note(run, "paid")
    return OrderStatus.PAID


async def payment_timed_out(run: Run[Order, OrderStatus], now: datetime) -> OrderStatus:
    _note(run, "timed out")
    return OrderStatus.PAYMENT_TIMED_OUT


async def ship(run: Run[Order, OrderStatus]) -> OrderStatus:
    _note(run, "ship")
    return OrderStatus.SHIPPED


def order_builder(payment_timeout: float = 3.0) -> Builder[Order, OrderStatus]:
    b = Builder("demo orders", Order, OrderStatus)
    b.add_step(OrderStatus.PLACED, validate, OrderStatus.VALIDATED, OrderStatus.REJECTED)
    b.add_step(OrderStatus.VALIDATED, reserve_stock, OrderStatus.AWAITING_PAYMENT).with_options(
        parallel_count=2
    )
    b.add_callback(OrderStatus.AWAITING_PAYMENT, payment_received, OrderStatus.PAID)
    b.add_timeout(
        OrderStatus.AWAITING_PAYMENT,
        duration_timer(payment_timeout),
        payment_timed_out,
        OrderStatus.PAYMENT_TIMED_OUT,
    ).with_options(polling_frequency=0.2)
    b.add_step(OrderStatus.PAID, ship, OrderStatus.SHIPPED)
    return b
