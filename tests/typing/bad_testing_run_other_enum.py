"""``new_testing_run`` at a status of another enum, handed to the workflow's step."""

from _typing_model import Doc, Other, review

from conveyor.testing import new_testing_run

review(new_testing_run(Doc(), Other.DONE))  # E: arg-type
