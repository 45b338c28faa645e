"""``Workflow.callback`` at a status of another enum."""

from _typing_model import Other, workflow


async def approve() -> None:
    await workflow().callback("doc-1", Other.STARTED, b"")  # E: arg-type
