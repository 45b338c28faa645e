"""``conveyor.testing.require`` at a status of another enum."""

from _typing_model import Doc, Other, workflow

from conveyor.testing import require


async def check() -> None:
    await require(workflow(), "doc-1", Other.DONE, Doc())  # E: misc
