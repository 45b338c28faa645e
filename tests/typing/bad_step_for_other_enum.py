"""A step typed on another workflow's status enum (``Builder[Doc, Status]``)."""

from _typing_model import Doc, Other, Status, builder

from conveyor import Run


def finish(run: Run[Doc, Other]) -> Other:
    return Other.DONE


builder().add_step(Status.REVIEWED, finish, Status.PUBLISHED)  # E: arg-type
