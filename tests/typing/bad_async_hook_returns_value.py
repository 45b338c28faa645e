"""An async hook returning a value."""

from _typing_model import Doc, Status, builder

from conveyor import TypedRecord


async def notify(record: TypedRecord[Doc, Status]) -> str:
    return "sent"


builder().on_pause(notify)  # E: arg-type
