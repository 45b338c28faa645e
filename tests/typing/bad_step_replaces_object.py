"""A step replacing the run's object with one of another type."""

from _typing_model import Doc, Invoice, Status

from conveyor import Run


def bill(run: Run[Doc, Status]) -> Status:
    run.object = Invoice(amount=3)  # E: assignment
    return Status.PUBLISHED
