"""A callback without the payload argument."""

from _typing_model import Doc, Status, builder

from conveyor import Run


def approve(run: Run[Doc, Status]) -> Status:
    return Status.PUBLISHED


builder().add_callback(Status.REVIEWED, approve, Status.PUBLISHED)  # E: arg-type
