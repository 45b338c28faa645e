"""Conformance suite of the ``KeepsDefinitions`` capability: the definitions running
workflows registered, a new version for each different document.

Run it beside ``RecordStoreSuite`` with the same ``store`` fixture. The first case checks
the claim (``isinstance``); the others the promises on ``KeepsDefinitions``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta

from .._capabilities import DefinitionRecord, KeepsDefinitions
from .._protocols import RecordStore
from ._fixtures import SECOND_WORKFLOW, WORKFLOW
from ._record_store import StoreCases

__all__ = ["KeepsDefinitionsSuite"]

_AT = datetime(2024, 7, 8, 9, 10, 11, 121314, tzinfo=UTC)


def _document(**statuses: int) -> tuple[str, str]:
    """A canonical definition document of ``statuses`` and its SHA-256."""
    document = json.dumps(
        {"statuses": statuses, "edges": [[1, 2]]}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(document.encode()).hexdigest(), document


_FIRST = _document(Started=1, Middle=2)
_SECOND = _document(Started=1, Middle=2, End=3)
_THIRD = _document(Started=1, End=3)


def _keeper(store: RecordStore) -> KeepsDefinitions:
    assert isinstance(store, KeepsDefinitions), f"{type(store).__name__} keeps no definitions"
    return store


def _at(seconds: int) -> datetime:
    return _AT + timedelta(seconds=seconds)


async def _register(
    store: RecordStore, document: tuple[str, str], at: int = 0, workflow: str = WORKFLOW
) -> DefinitionRecord:
    return await _keeper(store).register_definition(workflow, document[0], document[1], _at(at))


class KeepsDefinitionsSuite(StoreCases):
    """Cases for record stores that keep workflow definitions (``KeepsDefinitions``).

    Override the ``store`` fixture as for ``RecordStoreSuite`` (the same store passes
    both). Every workflow registers its definition when it starts; the web UI and the CLI
    read names and graphs from here.
    """

    async def test_store_keeps_definitions(self, store: RecordStore) -> None:
        assert isinstance(store, KeepsDefinitions)

    async def test_the_first_registration_is_version_1(self, store: RecordStore) -> None:
        kept = await _register(store, _FIRST)

        assert kept == DefinitionRecord(WORKFLOW, 1, _FIRST[0], _FIRST[1], _at(0))
        assert list(await _keeper(store).definition_versions(WORKFLOW)) == [kept]
        assert list(await _keeper(store).definitions()) == [kept]

    async def test_the_same_document_again_returns_it_unchanged(self, store: RecordStore) -> None:
        first = await _register(store, _FIRST, at=0)

        again = await _register(store, _FIRST, at=60)

        assert again == first  # the first registration's time, not the second's
        assert list(await _keeper(store).definition_versions(WORKFLOW)) == [first]

    async def test_a_changed_document_is_the_next_version_and_the_latest(
        self, store: RecordStore
    ) -> None:
        first = await _register(store, _FIRST, at=0)
        other = await _register(store, _THIRD, at=1, workflow=SECOND_WORKFLOW)

        second = await _register(store, _SECOND, at=2)

        assert second == DefinitionRecord(WORKFLOW, 2, _SECOND[0], _SECOND[1], _at(2))
        latest = list(await _keeper(store).definitions())
        assert latest == sorted([second, other], key=lambda d: d.workflow_name)
        assert list(await _keeper(store).definition_versions(WORKFLOW)) == [first, second]

    async def test_versions_are_listed_oldest_first(self, store: RecordStore) -> None:
        kept = [
            await _register(store, _FIRST, at=0),
            await _register(store, _SECOND, at=1),
            await _register(store, _THIRD, at=2),
        ]

        versions = list(await _keeper(store).definition_versions(WORKFLOW))

        assert versions == kept
        assert [v.version for v in versions] == [1, 2, 3]

    async def test_returning_to_an_older_document_is_a_new_version(
        self, store: RecordStore
    ) -> None:
        # Given a document, then another (a deploy and its rollback, say)
        await _register(store, _FIRST, at=0)
        await _register(store, _SECOND, at=1)

        # When the first is registered again
        back = await _register(store, _FIRST, at=2)

        # Then it differs from the latest, so it is version 3 (and the latest)
        assert (back.version, back.hash) == (3, _FIRST[0])
        assert list(await _keeper(store).definitions()) == [back]

    async def test_concurrent_registrations_of_one_document_keep_one_version(
        self, store: RecordStore
    ) -> None:
        kept = await asyncio.gather(*(_register(store, _FIRST, at=i) for i in range(10)))

        versions = list(await _keeper(store).definition_versions(WORKFLOW))
        assert len(versions) == 1
        assert versions[0].version == 1
        assert all(k == versions[0] for k in kept)

    async def test_concurrent_registrations_after_a_change_keep_one_new_version(
        self, store: RecordStore
    ) -> None:
        await _register(store, _FIRST)

        kept = await asyncio.gather(*(_register(store, _SECOND, at=i) for i in range(10)))

        versions = list(await _keeper(store).definition_versions(WORKFLOW))
        assert [(v.version, v.hash) for v in versions] == [(1, _FIRST[0]), (2, _SECOND[0])]
        assert all(k == versions[1] for k in kept)

    async def test_an_unknown_workflow_has_no_definition(self, store: RecordStore) -> None:
        assert list(await _keeper(store).definitions()) == []
        await _register(store, _FIRST)

        assert list(await _keeper(store).definition_versions("unknown")) == []
        assert [d.workflow_name for d in await _keeper(store).definitions()] == [WORKFLOW]
