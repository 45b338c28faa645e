"""A step that may return ``None`` (a forgotten ``return``)."""

from _typing_model import Doc, Status, builder

from conveyor import Run


def publish(run: Run[Doc, Status]) -> Status | None:
    return Status.PUBLISHED if run.object.title else None


builder().add_step(Status.REVIEWED, publish, Status.PUBLISHED)  # E: arg-type
