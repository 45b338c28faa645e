"""confluent-kafka's errors as conveyor's: ``AdapterUnavailable`` when the cluster cannot be
reached or does not answer in time (worth a retry), ``AdapterError`` for everything else."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

from ..._errors import AdapterError, AdapterUnavailable

__all__ = ["error_of", "is_unavailable", "translate"]

_GONE = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TIMED_OUT,
        KafkaError._MSG_TIMED_OUT,
        KafkaError._RESOLVE,
        KafkaError._WAIT_COORD,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.NETWORK_EXCEPTION,
        KafkaError._QUEUE_FULL,
    }
)


def error_of(exc: BaseException) -> KafkaError | None:
    """The ``KafkaError`` a confluent-kafka exception carries, if any."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None


def is_unavailable(error: KafkaError) -> bool:
    """Whether ``error`` means the cluster could not be reached or did not answer."""
    return error.code() in _GONE


def translate(exc: BaseException | KafkaError, what: str) -> AdapterError:
    """The conveyor error for a client failure while doing ``what`` (chain it as the cause)."""
    if isinstance(exc, AdapterError):
        return exc
    error = exc if isinstance(exc, KafkaError) else error_of(exc)
    if error is None:
        if isinstance(exc, BufferError):
            return AdapterUnavailable(f"Kafka producer queue full while {what}")
        return AdapterError(f"Kafka failed while {what}: {exc!r}")
    text = f"{error.name()}: {error.str()}"
    if is_unavailable(error):
        return AdapterUnavailable(f"Kafka unavailable while {what}: {text}")
    return AdapterError(f"Kafka failed while {what}: {text}")
