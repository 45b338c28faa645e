"""A step returning a status of another enum."""

from _typing_model import Doc, Other, Status, builder

from conveyor import Run


def publish(run: Run[Doc, Status]) -> Other:
    return Other.DONE


builder().add_step(Status.REVIEWED, publish, Status.PUBLISHED)  # E: arg-type
