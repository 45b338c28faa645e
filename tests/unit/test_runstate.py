"""RunState and State: the original's values, names, predicates and transition table."""

from __future__ import annotations

import itertools

import pytest

from conveyor import RunState, State

R = RunState

# luno-behaviour.md §4.2: every move the run-state controller allows. Nothing else.
ALLOWED: set[tuple[RunState, RunState]] = {
    (R.INITIATED, R.RUNNING),
    (R.INITIATED, R.PAUSED),
    (R.RUNNING, R.COMPLETED),
    (R.RUNNING, R.PAUSED),
    (R.RUNNING, R.CANCELLED),
    (R.PAUSED, R.RUNNING),
    (R.PAUSED, R.CANCELLED),
    (R.COMPLETED, R.REQUESTED_DATA_DELETED),
    (R.CANCELLED, R.REQUESTED_DATA_DELETED),
    (R.REQUESTED_DATA_DELETED, R.DATA_DELETED),
    (R.DATA_DELETED, R.REQUESTED_DATA_DELETED),
}


def test_run_state_values_are_the_originals_wire_values() -> None:
    assert {s.name: int(s) for s in RunState} == {
        "UNKNOWN": 0,
        "INITIATED": 1,
        "RUNNING": 2,
        "PAUSED": 3,
        "CANCELLED": 4,
        "COMPLETED": 5,
        "DATA_DELETED": 6,
        "REQUESTED_DATA_DELETED": 7,
    }


@pytest.mark.parametrize(
    ("state", "text"),
    [
        (R.UNKNOWN, "Unknown"),
        (R.INITIATED, "Initiated"),
        (R.RUNNING, "Running"),
        (R.PAUSED, "Paused"),
        (R.CANCELLED, "Cancelled"),
        (R.COMPLETED, "Completed"),
        (R.DATA_DELETED, "Data Deleted"),
        (R.REQUESTED_DATA_DELETED, "Requested Data Deleted"),
    ],
)
def test_run_state_str_is_the_spaced_name(state: RunState, text: str) -> None:
    assert str(state) == text
    assert f"{state}" == text


@pytest.mark.parametrize("value", [-1, 8, 9, 9999])
def test_out_of_range_run_state_values_are_rejected(value: int) -> None:
    # A RunState cannot hold a value outside 0..7, so no predicate can see one.
    with pytest.raises(ValueError, match=str(value)):
        RunState(value)


@pytest.mark.parametrize(
    ("state", "valid", "finished", "stopped"),
    [
        (R.UNKNOWN, False, False, False),
        (R.INITIATED, True, False, False),
        (R.RUNNING, True, False, False),
        (R.PAUSED, True, False, True),
        (R.CANCELLED, True, True, True),
        (R.COMPLETED, True, True, False),
        (R.DATA_DELETED, True, True, True),
        (R.REQUESTED_DATA_DELETED, True, True, True),
    ],
)
def test_predicates(state: RunState, valid: bool, finished: bool, stopped: bool) -> None:
    assert state.valid() is valid
    assert state.finished() is finished
    assert state.stopped() is stopped


def test_completed_is_finished_but_not_stopped_and_paused_is_stopped_but_not_finished() -> None:
    assert R.COMPLETED.finished()
    assert not R.COMPLETED.stopped()
    assert R.PAUSED.stopped()
    assert not R.PAUSED.finished()


@pytest.mark.parametrize(
    ("from_", "to"),
    list(itertools.product(RunState, RunState)),
    ids=lambda s: s.name,
)
def test_transition_table(from_: RunState, to: RunState) -> None:
    assert from_.can_transition_to(to) is ((from_, to) in ALLOWED)


def test_transition_table_has_64_pairs_of_which_11_are_allowed() -> None:
    pairs = list(itertools.product(RunState, RunState))
    assert len(pairs) == 64
    assert sum(a.can_transition_to(b) for a, b in pairs) == len(ALLOWED) == 11


def test_no_state_may_move_to_itself_or_out_of_unknown() -> None:
    for state in RunState:
        assert not state.can_transition_to(state)
        assert not R.UNKNOWN.can_transition_to(state)
        assert not state.can_transition_to(R.UNKNOWN)


def test_process_state_values() -> None:
    assert {s.name: int(s) for s in State} == {
        "UNKNOWN": 0,
        "SHUTDOWN": 1,
        "RUNNING": 2,
        "IDLE": 3,
    }
