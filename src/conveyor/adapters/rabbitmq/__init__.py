"""RabbitMQ adapters on streams (``pip install 'conveyor[rabbitmq]'``; the stream protocol
of the node's ``rabbitmq_stream`` plugin, spoken by the adapter itself).

``RabbitEventStreamer``: a stream per topic, an offset reference per receiver name,
``Delivery.CURSOR``, publisher confirms; ``RabbitConnector`` reads an outside stream into
a workflow. They share a ``RabbitConnection``
(``rabbitmq-stream://user:password@host:5552/vhost?prefix=...`` and the options of
``RabbitOptions``), or each opens its own from a URL. Records, roles and timeouts live
elsewhere (a SQL store, Redis): RabbitMQ has no transactions to keep them in.
"""

from ._connection import RabbitConnection as RabbitConnection
from ._names import stream_name as stream_name
from ._options import RabbitOptions as RabbitOptions
from ._streamer import RabbitEventReceiver as RabbitEventReceiver
from ._streamer import RabbitEventSender as RabbitEventSender
from ._streamer import RabbitEventStreamer as RabbitEventStreamer

__all__ = (
    "RabbitConnection",
    "RabbitEventReceiver",
    "RabbitEventSender",
    "RabbitEventStreamer",
    "RabbitOptions",
    "stream_name",
)
