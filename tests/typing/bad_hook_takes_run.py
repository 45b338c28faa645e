"""A hook typed on ``Run``: hooks get a ``TypedRecord`` (no markers to return)."""

from _typing_model import Doc, Status, builder

from conveyor import Run


def notify(run: Run[Doc, Status]) -> None:
    run.skip()


builder().on_cancel(notify)  # E: arg-type
