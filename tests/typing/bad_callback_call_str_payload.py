"""``Workflow.callback`` with a ``str`` payload."""

from _typing_model import Status, workflow


async def approve() -> None:
    await workflow().callback("doc-1", Status.REVIEWED, "approved")  # E: arg-type
