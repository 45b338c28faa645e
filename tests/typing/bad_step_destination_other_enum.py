"""A destination status of another enum."""

from _typing_model import Other, Status, builder, review

builder().add_step(Status.PUBLISHED, review, Other.DONE)  # E: arg-type
