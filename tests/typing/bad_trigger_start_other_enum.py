"""``Workflow.trigger`` starting at a status of another enum."""

from _typing_model import Other, workflow


async def start() -> None:
    await workflow().trigger("doc-1", start_at=Other.STARTED)  # E: arg-type
