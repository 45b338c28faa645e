"""A plain step returning an ``int`` (a status's value), not the status."""

from _typing_model import Doc, Status, builder

from conveyor import Run


def publish(run: Run[Doc, Status]) -> int:
    return 3


builder().add_step(Status.REVIEWED, publish, Status.PUBLISHED)  # E: arg-type
