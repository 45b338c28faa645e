"""Conformance suite of the ``PinsEventLocation`` capability: where a deployment's events
go, recorded once so a process configured to send them elsewhere is refused at ``connect``.

Run it beside ``RecordStoreSuite`` with the same ``store`` fixture, on a store that claims
the capability (a store that does not claim it is not required to run it: ``connect``
checks nothing then). The first case checks the claim (``isinstance``); the others the
promises on ``PinsEventLocation``.
"""

from __future__ import annotations

import asyncio

from .._capabilities import PinsEventLocation
from .._protocols import RecordStore
from ._record_store import StoreCases

__all__ = ["PinsEventLocationSuite"]

_STORE = "store"
_BROKER = "nats://broker.example:4222/conveyor"
_OTHER_BROKER = "redis://cache.example:6379/0"


def _pinner(store: RecordStore) -> PinsEventLocation:
    assert isinstance(store, PinsEventLocation), f"{type(store).__name__} pins no event location"
    return store


class PinsEventLocationSuite(StoreCases):
    """Cases for record stores that record where their deployment's events go
    (``PinsEventLocation``).

    Override the ``store`` fixture as for ``RecordStoreSuite`` (the same store passes
    both): a fresh store has no location recorded. Every process pins its configured
    location at ``connect``; an operator repins once the old location is drained.
    """

    async def test_store_pins_event_location(self, store: RecordStore) -> None:
        assert isinstance(store, PinsEventLocation)

    async def test_the_first_pin_is_recorded_and_returned(self, store: RecordStore) -> None:
        # Given a fresh store, When a location is pinned
        pinned = await _pinner(store).pin_event_location(_BROKER)

        # Then it is the recorded one, and stays so
        assert pinned == _BROKER
        assert await _pinner(store).pin_event_location(_BROKER) == _BROKER

    async def test_a_later_different_pin_returns_the_first(self, store: RecordStore) -> None:
        # Given a recorded location
        await _pinner(store).pin_event_location(_STORE)

        # When another process pins another location
        pinned = await _pinner(store).pin_event_location(_BROKER)

        # Then the first is returned (the caller refuses to run), and it stays recorded
        assert pinned == _STORE
        assert await _pinner(store).pin_event_location(_OTHER_BROKER) == _STORE

    async def test_the_same_pin_again_returns_it(self, store: RecordStore) -> None:
        # Given a recorded location
        first = await _pinner(store).pin_event_location(_BROKER)

        # When every later process pins the same location
        again = [await _pinner(store).pin_event_location(_BROKER) for _ in range(3)]

        # Then each gets it back
        assert again == [first] * 3 == [_BROKER] * 3

    async def test_concurrent_first_pins_of_different_locations_all_return_one(
        self, store: RecordStore
    ) -> None:
        # Given a fresh store, When ten processes pin ten locations at once
        locations = [f"{_BROKER}-{i}" for i in range(10)]
        pinned = await asyncio.gather(*(_pinner(store).pin_event_location(x) for x in locations))

        # Then one of them is recorded and every call returns it
        assert len(set(pinned)) == 1, f"different locations returned: {sorted(set(pinned))}"
        assert pinned[0] in locations
        assert await _pinner(store).pin_event_location(_OTHER_BROKER) == pinned[0]

    async def test_a_repin_overwrites_and_later_pins_return_the_new_location(
        self, store: RecordStore
    ) -> None:
        # Given a recorded location
        await _pinner(store).pin_event_location(_STORE)

        # When the deployment's events are moved and the new location repinned
        await _pinner(store).repin_event_location(_BROKER)

        # Then later pins return the new location, whatever they pin
        assert await _pinner(store).pin_event_location(_STORE) == _BROKER
        assert await _pinner(store).pin_event_location(_BROKER) == _BROKER

    async def test_a_repin_on_a_fresh_store_records_the_location(self, store: RecordStore) -> None:
        # Given a fresh store, When a location is repinned before any pin
        await _pinner(store).repin_event_location(_OTHER_BROKER)

        # Then it is the recorded one
        assert await _pinner(store).pin_event_location(_BROKER) == _OTHER_BROKER
