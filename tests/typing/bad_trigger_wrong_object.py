"""``Workflow.trigger`` with an initial object of another type."""

from _typing_model import Invoice, workflow


async def start() -> None:
    await workflow().trigger("doc-1", initial=Invoice(amount=3))  # E: arg-type
