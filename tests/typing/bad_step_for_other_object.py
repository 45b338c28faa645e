"""A step typed on another object type."""

from _typing_model import Invoice, Status, builder

from conveyor import Run


def publish(run: Run[Invoice, Status]) -> Status:
    return Status.PUBLISHED


builder().add_step(Status.REVIEWED, publish, Status.PUBLISHED)  # E: arg-type
