"""NATS JetStream adapters (``pip install 'conveyor[nats]'``, the nats-py client).

``NatsEventStreamer`` (a stream per topic, a durable pull consumer per receiver name,
``Delivery.PER_EVENT``), with tails for waits (``NatsTail``); ``NatsRoleScheduler`` (roles
as compare-and-set keys of a key-value bucket whose TTL is the lease); ``NatsConnector``
reads an outside stream into a workflow. They share a ``NatsConnection`` (one client
connection; ``nats://host:4222?prefix=...`` and the options of ``NatsOptions``), or each
opens its own from a URL. Names are escaped injectively (``escape``). Records and
timeouts live elsewhere (a SQL store): NATS has no transactions to keep them in.
"""

from ._connection import NatsConnection as NatsConnection
from ._connector import NatsConnector as NatsConnector
from ._connector import NatsConnectorConsumer as NatsConnectorConsumer
from ._connector import NatsMessage as NatsMessage
from ._connector import message_event as message_event
from ._names import escape as escape
from ._options import NatsOptions as NatsOptions
from ._role_scheduler import NatsLease as NatsLease
from ._role_scheduler import NatsRoleScheduler as NatsRoleScheduler
from ._streamer import NatsEventReceiver as NatsEventReceiver
from ._streamer import NatsEventSender as NatsEventSender
from ._streamer import NatsEventStreamer as NatsEventStreamer
from ._tail import NatsTail as NatsTail

__all__ = (
    "NatsConnection",
    "NatsConnector",
    "NatsConnectorConsumer",
    "NatsEventReceiver",
    "NatsEventSender",
    "NatsEventStreamer",
    "NatsLease",
    "NatsMessage",
    "NatsOptions",
    "NatsRoleScheduler",
    "NatsTail",
    "escape",
    "message_event",
)
