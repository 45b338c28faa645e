"""An async step returning a ``str``, not a status or a marker."""

from _typing_model import Doc, Status, builder

from conveyor import Run


async def publish(run: Run[Doc, Status]) -> str:
    return "PUBLISHED"


builder().add_step(Status.REVIEWED, publish, Status.PUBLISHED)  # E: arg-type
