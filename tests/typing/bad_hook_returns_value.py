"""A hook returning a value: hooks return ``None``."""

from _typing_model import Doc, Status, builder

from conveyor import TypedRecord


def notify(record: TypedRecord[Doc, Status]) -> bool:
    return True


builder().on_complete(notify)  # E: arg-type
