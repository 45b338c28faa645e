"""RabbitMQ adapters on streams (``pip install 'conveyor[rabbitmq]'``; the stream protocol
of the node's ``rabbitmq_stream`` plugin, spoken by the adapter itself).

``RabbitEventStreamer``: a stream per topic, an offset reference per receiver name,
``Delivery.CURSOR``, publisher confirms, tails for waits (``RabbitTail``);
``RabbitConnector`` reads an outside stream into a workflow. They share a ``RabbitConnection``
(``rabbitmq-stream://user:password@host:5552/vhost?prefix=...`` and the options of
``RabbitOptions``), or each opens its own from a URL. Records, roles and timeouts live
elsewhere (a SQL store, Redis): RabbitMQ has no transactions to keep them in.
"""

from ._amqp import AmqpMessage as AmqpMessage
from ._amqp import decode_message as decode_message
from ._amqp import encode_message as encode_message
from ._connection import RabbitConnection as RabbitConnection
from ._connector import RabbitConnector as RabbitConnector
from ._connector import RabbitConnectorConsumer as RabbitConnectorConsumer
from ._connector import StreamMessage as StreamMessage
from ._connector import message_event as message_event
from ._names import stream_name as stream_name
from ._options import RabbitOptions as RabbitOptions
from ._streamer import RabbitEventReceiver as RabbitEventReceiver
from ._streamer import RabbitEventSender as RabbitEventSender
from ._streamer import RabbitEventStreamer as RabbitEventStreamer
from ._tail import RabbitTail as RabbitTail

__all__ = (
    "AmqpMessage",
    "RabbitConnection",
    "RabbitConnector",
    "RabbitConnectorConsumer",
    "RabbitEventReceiver",
    "RabbitEventSender",
    "RabbitEventStreamer",
    "RabbitOptions",
    "RabbitTail",
    "StreamMessage",
    "decode_message",
    "encode_message",
    "message_event",
    "stream_name",
)
