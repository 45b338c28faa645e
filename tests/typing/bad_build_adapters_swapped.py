"""``build`` with the record store and the event streamer swapped."""

from _typing_model import builder

from conveyor.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler

builder().build(
    MemoryRecordStore(),  # E: arg-type
    MemoryEventStreamer(),  # E: arg-type
    MemoryRoleScheduler(),
)
