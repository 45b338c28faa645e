"""A status type that is an ``enum.Enum``, not an ``enum.IntEnum``."""

import enum

from _typing_model import Doc

from conveyor import Builder


class Color(enum.Enum):
    RED = 1


Builder("colors", Doc, Color)  # E: type-var
