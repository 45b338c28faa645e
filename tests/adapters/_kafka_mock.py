"""A librdkafka mock cluster that other processes can reach: run as a script.

The mock cluster lives inside the librdkafka handle that created it, so this small process
creates one (``rd_kafka_mock_cluster_new``, the C API behind ``test.mock.num.brokers``),
prints its bootstrap address on one line and keeps it up until its standard input closes.
Test fixtures and benchmarks start it and hand the address to clients in other processes.

The mock answers the Kafka protocol (produce, fetch, metadata, offset commit and fetch, ...)
but not ``CreateTopics`` (an admin client's call fails with ``_UNSUPPORTED_FEATURE``: the
broker advertises no such API), so topics are created through this process instead: each line
``create <topic> <partitions> <replication>`` on stdin creates one with the mock's own C
call and is answered with ``ok`` or ``error <code>``. ``down <broker id>`` closes every
client connection to that broker (ids 1 to ``BROKERS``) and refuses new ones, ``up
<broker id>`` lets clients connect again (``rd_kafka_mock_broker_set_down`` and
``..._set_up``; leadership does not move), answered the same way. It has no disk and no replication:
what runs on it measures the client path, not a real cluster.
"""

from __future__ import annotations

import ctypes
import pathlib
import sys

import confluent_kafka

BROKERS = 3
_PRODUCER = 0


def _librdkafka() -> ctypes.CDLL:
    """The librdkafka that confluent-kafka's wheel ships (the one its module loaded)."""
    libs = pathlib.Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs"
    (path,) = libs.glob("librdkafka*.so*")
    lib = ctypes.CDLL(str(path))
    lib.rd_kafka_new.restype = ctypes.c_void_p
    lib.rd_kafka_new.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.rd_kafka_mock_cluster_new.restype = ctypes.c_void_p
    lib.rd_kafka_mock_cluster_new.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.rd_kafka_mock_cluster_bootstraps.restype = ctypes.c_char_p
    lib.rd_kafka_mock_cluster_bootstraps.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_mock_topic_create.restype = ctypes.c_int
    lib.rd_kafka_mock_topic_create.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_int,
    ]
    for name in (
        "rd_kafka_mock_broker_set_down",
        "rd_kafka_mock_broker_set_up",
        "rd_kafka_mock_set_controller_id",
    ):
        call = getattr(lib, name)
        call.restype = ctypes.c_int
        call.argtypes = [ctypes.c_void_p, ctypes.c_int32]
    return lib


def main() -> None:
    """Start the cluster, print ``host:port,...``, serve topic creation until stdin closes."""
    lib = _librdkafka()
    errors = ctypes.create_string_buffer(512)
    handle = lib.rd_kafka_new(_PRODUCER, None, errors, len(errors))
    if not handle:
        raise SystemExit(f"rd_kafka_new failed: {errors.value.decode()}")
    cluster = lib.rd_kafka_mock_cluster_new(handle, BROKERS)
    if not cluster:
        raise SystemExit("rd_kafka_mock_cluster_new failed")
    # a controller, so that an admin client's CreateTopics fails at once with the mock's
    # missing API (_UNSUPPORTED_FEATURE) instead of waiting out its timeout for one
    lib.rd_kafka_mock_set_controller_id(cluster, 1)
    print(lib.rd_kafka_mock_cluster_bootstraps(cluster).decode(), flush=True)
    for line in sys.stdin:  # until the parent closes our stdin (or dies)
        match line.split():
            case ["create", topic, partitions, replication]:
                code = lib.rd_kafka_mock_topic_create(
                    cluster, topic.encode(), int(partitions), int(replication)
                )
                print("ok" if code == 0 else f"error {code}", flush=True)
            case ["down" | "up" as state, broker]:
                call = getattr(lib, f"rd_kafka_mock_broker_set_{state}")
                code = call(cluster, int(broker))
                print("ok" if code == 0 else f"error {code}", flush=True)
            case _:
                print("error unknown command", flush=True)


if __name__ == "__main__":
    main()
