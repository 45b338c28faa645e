"""Redis adapters (``pip install 'conveyor[redis]'``, the redis-py driver).

``RedisClient`` is the connection pool every adapter here shares (``open_client`` makes
one from a ``redis://`` URL and options); ``RedisRoleScheduler`` keeps roles as expiring
keys, ``RedisEventStreamer`` moves events on Redis Streams with a consumer group per
receiver name, ``RedisRecordStore`` and ``RedisTimeoutStore`` keep runs (with their
outbox) and timeouts in Lua-scripted writes, and ``RedisStreamConnector`` reads an outside
stream into a workflow. ``open_backend`` (what ``conveyor.connect("redis://…")`` calls)
opens all four on one pool.
"""

from ._client import RedisClient as RedisClient
from ._client import open_client as open_client
from ._connector import RedisStreamConnector as RedisStreamConnector
from ._connector import RedisStreamConsumer as RedisStreamConsumer
from ._options import RedisOptions as RedisOptions
from ._parts import RedisBackend as RedisBackend
from ._parts import open_backend as open_backend
from ._record_store import RedisRecordStore as RedisRecordStore
from ._role_scheduler import RedisLease as RedisLease
from ._role_scheduler import RedisRoleScheduler as RedisRoleScheduler
from ._streamer import RedisEventReceiver as RedisEventReceiver
from ._streamer import RedisEventSender as RedisEventSender
from ._streamer import RedisEventStreamer as RedisEventStreamer
from ._tail import RedisTail as RedisTail
from ._timeout_store import RedisTimeoutStore as RedisTimeoutStore

__all__ = (
    "RedisBackend",
    "RedisClient",
    "RedisEventReceiver",
    "RedisEventSender",
    "RedisEventStreamer",
    "RedisLease",
    "RedisOptions",
    "RedisRecordStore",
    "RedisRoleScheduler",
    "RedisStreamConnector",
    "RedisStreamConsumer",
    "RedisTail",
    "RedisTimeoutStore",
    "open_backend",
    "open_client",
)
