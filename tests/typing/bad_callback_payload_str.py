"""A callback whose payload is a ``str``: payloads are ``bytes``."""

from _typing_model import Doc, Status, builder

from conveyor import Run


def approve(run: Run[Doc, Status], payload: str) -> Status:
    return Status.PUBLISHED


builder().add_callback(Status.REVIEWED, approve, Status.PUBLISHED)  # E: arg-type
