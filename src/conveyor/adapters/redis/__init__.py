"""Redis adapters (``pip install 'conveyor[redis]'``, the redis-py driver).

``RedisClient`` is the connection pool every adapter here shares (``open_client`` makes
one from a ``redis://`` URL and options); ``RedisRoleScheduler`` keeps roles as expiring
keys, ``RedisEventStreamer`` moves events on Redis Streams with a consumer group per
receiver name, and ``RedisStreamConnector`` reads an outside stream into a workflow.
"""

try:
    import redis as _redis  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "conveyor.adapters.redis needs the redis driver: pip install 'conveyor[redis]'"
    ) from exc

from ._client import RedisClient as RedisClient
from ._client import open_client as open_client
from ._connector import RedisStreamConnector as RedisStreamConnector
from ._connector import RedisStreamConsumer as RedisStreamConsumer
from ._options import RedisOptions as RedisOptions
from ._role_scheduler import RedisLease as RedisLease
from ._role_scheduler import RedisRoleScheduler as RedisRoleScheduler
from ._streamer import RedisEventReceiver as RedisEventReceiver
from ._streamer import RedisEventSender as RedisEventSender
from ._streamer import RedisEventStreamer as RedisEventStreamer
from ._tail import RedisTail as RedisTail

__all__ = (
    "RedisClient",
    "RedisEventReceiver",
    "RedisEventSender",
    "RedisEventStreamer",
    "RedisLease",
    "RedisOptions",
    "RedisRoleScheduler",
    "RedisStreamConnector",
    "RedisStreamConsumer",
    "RedisTail",
    "open_client",
)
