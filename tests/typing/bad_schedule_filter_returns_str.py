"""A schedule filter returning a ``str``: filters return ``bool``."""

from datetime import datetime

from _typing_model import workflow


def weekdays(slot: datetime) -> str:
    return "yes"


async def digest() -> None:
    await workflow().schedule("digest", "@daily", filter=weekdays)  # E: arg-type
