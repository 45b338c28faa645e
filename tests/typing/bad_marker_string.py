"""A marker made by hand as a string (``"skip"``) instead of ``run.skip()``."""

from _typing_model import Doc, Status

from conveyor import Marker, Run


def publish(run: Run[Doc, Status]) -> Status | Marker:
    return "skip"  # E: return-value
