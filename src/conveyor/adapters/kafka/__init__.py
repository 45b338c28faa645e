"""Kafka adapters (``pip install 'conveyor[kafka]'``, the confluent-kafka client).

``KafkaEventStreamer`` (a Kafka topic per conveyor topic, keyed by run ID, receivers on
assigned partitions with committed offsets: ``Delivery.CURSOR`` per partition) and
``KafkaConnector`` (any outside topic into a workflow). Topic names are escaped
injectively (``escape``); topics are created explicitly (``conveyor migrate``, or the
``create_topics`` option) through a ``TopicAdmin``. Records, timeouts and roles live
elsewhere (a SQL store, Redis).
"""

try:
    import confluent_kafka as _driver  # noqa: F401
except ImportError as _missing:  # pragma: no cover - depends on the installation
    raise ImportError(
        "conveyor.adapters.kafka needs confluent-kafka: pip install 'conveyor[kafka]'"
    ) from _missing

from ._admin import KafkaTopicAdmin as KafkaTopicAdmin
from ._admin import TopicAdmin as TopicAdmin
from ._admin import TopicSpec as TopicSpec
from ._client import KafkaClient as KafkaClient
from ._connector import EVENT_ID_HEADER as EVENT_ID_HEADER
from ._connector import EVENT_TYPE_HEADER as EVENT_TYPE_HEADER
from ._connector import KafkaConnector as KafkaConnector
from ._connector import KafkaConnectorConsumer as KafkaConnectorConsumer
from ._connector import Mapper as Mapper
from ._connector import message_event as message_event
from ._names import escape as escape
from ._names import unescape as unescape
from ._options import KafkaOptions as KafkaOptions
from ._streamer import KafkaEventReceiver as KafkaEventReceiver
from ._streamer import KafkaEventSender as KafkaEventSender
from ._streamer import KafkaEventStreamer as KafkaEventStreamer

__all__ = (
    "EVENT_ID_HEADER",
    "EVENT_TYPE_HEADER",
    "KafkaClient",
    "KafkaConnector",
    "KafkaConnectorConsumer",
    "KafkaEventReceiver",
    "KafkaEventSender",
    "KafkaEventStreamer",
    "KafkaOptions",
    "KafkaTopicAdmin",
    "Mapper",
    "TopicAdmin",
    "TopicSpec",
    "escape",
    "message_event",
    "unescape",
)
