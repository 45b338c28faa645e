"""A plain ``int`` (the Go habit) where a status is expected."""

from _typing_model import Status, builder, review

builder().add_step(Status.REVIEWED, review, 3)  # E: arg-type
