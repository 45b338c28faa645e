"""``run.skip`` returned without calling it."""

from _typing_model import Doc, Status

from conveyor import Marker, Run


def publish(run: Run[Doc, Status]) -> Status | Marker:
    return run.skip  # E: return-value
