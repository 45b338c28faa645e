"""``Workflow.wait`` for a status of another enum."""

from _typing_model import Other, workflow


async def wait() -> None:
    await workflow().wait("doc-1", "run-1", Other.DONE)  # E: arg-type
