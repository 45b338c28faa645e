"""NATS JetStream adapters (``pip install 'conveyor[nats]'``, the nats-py client).

``NatsEventStreamer`` (a stream per topic, a durable pull consumer per receiver name,
``Delivery.PER_EVENT``), with tails for waits (``NatsTail``); ``NatsConnector`` reads
outside subjects into a workflow. Names are escaped injectively (``escape``).
"""

from ._connection import NatsConnection as NatsConnection
from ._names import escape as escape
from ._options import NatsOptions as NatsOptions
from ._streamer import NatsEventReceiver as NatsEventReceiver
from ._streamer import NatsEventSender as NatsEventSender
from ._streamer import NatsEventStreamer as NatsEventStreamer
from ._tail import NatsTail as NatsTail

__all__ = (
    "NatsConnection",
    "NatsEventReceiver",
    "NatsEventSender",
    "NatsEventStreamer",
    "NatsOptions",
    "NatsTail",
    "escape",
)
