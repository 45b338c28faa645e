"""A plain ``str`` where a status is expected."""

from _typing_model import Status, builder, review

builder().add_step("REVIEWED", review, Status.PUBLISHED)  # E: arg-type
