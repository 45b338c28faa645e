"""A ``custom_delete`` returning something other than the object type."""

from _typing_model import Doc, builder

from conveyor.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler


def scrub(doc: Doc) -> str:
    return ""


builder().build(
    MemoryEventStreamer(),
    MemoryRecordStore(),
    MemoryRoleScheduler(),
    custom_delete=scrub,  # E: arg-type
)
