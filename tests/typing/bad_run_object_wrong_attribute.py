"""A run's object is the workflow's type: ``wait`` returns ``Run[Doc, Status]``."""

from _typing_model import Status, workflow


async def show_amount() -> None:
    run = await workflow().wait("doc-1", "run-1", Status.PUBLISHED)
    print(run.object.amount)  # E: attr-defined
