"""The JSON API: reading runs and definitions by what people type, and acting on runs."""

from __future__ import annotations

from collections import Counter

from conveyor import RunState
from conveyor._capabilities import KeepsHistory

from .conftest import AUTH, Site


async def test_workflows_lists_registered_definitions_with_status_names(site: Site) -> None:
    body = (await site.client.get("/api/workflows")).json()
    [parcels] = body["workflows"]
    assert parcels["name"] == "parcels"
    assert parcels["statuses"]["2"] == "PACKED"
    assert [1, 2] in parcels["edges"]
    assert parcels["starting"] == [1]
    assert parcels["callbacks"] == [2]
    assert parcels["steps"] == [1]


async def test_runs_are_listed_newest_first_and_paged_by_cursor(site: Site) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        body = (await site.client.get("/api/runs", params=params)).json()
        seen += [r["run_id"] for r in body["runs"]]
        cursor = body["cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(site.runs.all())
    assert len(seen) == len(set(seen))
    first = (await site.client.get("/api/runs", params={"limit": 100})).json()["runs"]
    created = [r["created_at"] for r in first]
    assert created == sorted(created, reverse=True)
    assert [r["run_id"] for r in first] == seen


async def test_a_status_is_given_by_name_or_number_and_shown_by_name(site: Site) -> None:
    by_name = (await site.client.get("/api/runs", params={"status": "packed"})).json()["runs"]
    by_number = (await site.client.get("/api/runs", params={"status": "2"})).json()["runs"]
    assert by_name == by_number
    assert by_name
    assert {r["status_name"] for r in by_name} == {"PACKED"}
    both = await site.client.get("/api/runs", params={"status": "PLACED,SHIPPED"})
    assert Counter(r["status_name"] for r in both.json()["runs"]) == {"PLACED": 2, "SHIPPED": 2}


async def test_filters_narrow_by_run_state_foreign_id_prefix_and_time(site: Site) -> None:
    get = site.client.get
    paused = (await get("/api/runs", params={"run_state": "paused"})).json()["runs"]
    assert {r["run_id"] for r in paused} == {*site.runs.paused, site.runs.injected}
    failing = (await get("/api/runs", params={"foreign_id_prefix": "fail-"})).json()["runs"]
    assert {r["run_id"] for r in failing} == set(site.runs.failing)
    exact = (await get("/api/runs", params={"foreign_id": "fail-1"})).json()["runs"]
    assert [r["foreign_id"] for r in exact] == ["fail-1"]
    everything = (await get("/api/runs", params={"limit": 100})).json()["runs"]
    middle = sorted(r["created_at"] for r in everything)[10]
    after = (await get("/api/runs", params={"created_after": middle, "limit": 100})).json()
    before = (await get("/api/runs", params={"created_before": middle, "limit": 100})).json()
    assert len(after["runs"]) + len(before["runs"]) == len(everything)
    assert all(r["created_at"] >= middle for r in after["runs"])


async def test_bad_filters_are_refused_in_words(site: Site) -> None:
    get = site.client.get
    unknown = await get("/api/runs", params={"status": "LOST"})
    assert unknown.status_code == 400
    assert unknown.json() == {
        "error": "bad_filter",
        "detail": "status 'LOST' is not a status of any registered workflow",
    }
    state = await get("/api/runs", params={"run_state": "sleeping"})
    assert state.status_code == 422  # the document lists the run states
    assert "run_state" in state.json()["detail"]
    cursor = await get("/api/runs", params={"cursor": "not-a-cursor"})
    assert cursor.status_code == 400
    assert cursor.json()["error"] == "bad_cursor"
    when = await get("/api/runs", params={"created_after": "yesterday"})
    assert when.status_code == 422
    assert when.json()["error"] == "bad_request"
    limit = await get("/api/runs", params={"limit": 5000})
    assert limit.status_code == 422


async def test_a_run_is_shown_with_its_object_failure_and_allowed_actions(site: Site) -> None:
    failing = (await site.client.get(f"/api/runs/{site.runs.failing[0]}")).json()
    assert failing["status_name"] == "PLACED"
    assert failing["object"] == {"note": "heavy", "weight": 1}
    assert failing["failure"]["error_type"] == "RuntimeError"
    assert "carrier <b>down</b>" in failing["failure"]["message"]
    assert failing["next_attempt_at"] == failing["failure"]["next_attempt_at"] is not None
    assert "retry" in failing["actions"]
    done = (await site.client.get(f"/api/runs/{site.runs.completed[0]}")).json()
    assert done["run_state"] == "Completed"
    assert done["actions"] == ["delete"]
    assert done["failure"] is None
    assert done["next_attempt_at"] is None
    paused = (await site.client.get(f"/api/runs/{site.runs.paused[0]}")).json()
    assert paused["actions"] == ["resume", "cancel"]


async def test_a_run_id_prefix_finds_its_run_and_an_ambiguous_one_is_refused(site: Site) -> None:
    run_id = site.runs.cancelled[0]
    short = await site.client.get(f"/api/runs/{run_id[:8]}")
    assert short.status_code == 200
    assert short.json()["run_id"] == run_id
    firsts = Counter(r[0] for r in site.runs.all())
    shared = next(c for c, n in firsts.items() if n > 1)  # 21 runs, 16 hex digits
    ambiguous = await site.client.get(f"/api/runs/{shared}")
    assert ambiguous.status_code == 400
    assert ambiguous.json()["error"] == "ambiguous_run_id"
    missing = await site.client.get("/api/runs/ffffffff-0000-0000-0000-000000000000")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"


async def test_history_shows_every_version_with_status_names_and_failures(site: Site) -> None:
    cancelled = (await site.client.get(f"/api/runs/{site.runs.cancelled[0]}/history")).json()
    steps = [(e["version"], e["status_name"], e["run_state"]) for e in cancelled["history"]]
    assert steps == [
        (1, "PLACED", "Initiated"),
        (2, "PACKED", "Running"),
        (3, "PACKED", "Cancelled"),
    ]
    assert cancelled["history"][-1]["reason"] == "duplicate order"
    failing = (await site.client.get(f"/api/runs/{site.runs.failing[0]}/history")).json()
    [entry] = failing["history"]
    assert entry["failures"]
    assert entry["failures"][0]["attempt"] == 1


async def test_pause_and_resume_write_new_versions_with_the_reason(site: Site) -> None:
    run_id = site.runs.waiting[0]
    post = site.client.post
    paused = await post(f"/api/runs/{run_id}/pause", json={"reason": "check stock"}, headers=AUTH)
    assert paused.status_code == 200
    assert paused.json()["run_state"] == "Paused"
    assert paused.json()["reason"] == "check stock"
    resumed = await post(f"/api/runs/{run_id[:10]}/resume", headers=AUTH)
    assert resumed.json()["run_state"] == "Running"
    assert resumed.json()["version"] == paused.json()["version"] + 1


async def test_an_action_on_the_version_read_is_refused_once_the_run_moved(site: Site) -> None:
    run_id = site.runs.waiting[1]
    version = (await site.client.get(f"/api/runs/{run_id}")).json()["version"]
    await site.client.post(f"/api/runs/{run_id}/pause", headers=AUTH)
    stale = await site.client.post(
        f"/api/runs/{run_id}/cancel", json={"version": version}, headers=AUTH
    )
    assert stale.status_code == 409
    assert stale.json()["error"] == "changed"
    assert (await site.client.get(f"/api/runs/{run_id}")).json()["run_state"] == "Paused"


async def test_an_action_the_run_state_forbids_is_refused(site: Site) -> None:
    refused = await site.client.post(f"/api/runs/{site.runs.waiting[0]}/resume", headers=AUTH)
    assert refused.status_code == 409
    assert refused.json()["error"] == "refused"
    assert "cannot resume a run that is Running" in refused.json()["detail"]
    retry = await site.client.post(f"/api/runs/{site.runs.waiting[0]}/retry", headers=AUTH)
    assert retry.status_code == 409
    assert "not waiting for its next attempt" in retry.json()["detail"]
    unknown = await site.client.post(f"/api/runs/{site.runs.waiting[0]}/explode", headers=AUTH)
    assert unknown.status_code == 422


async def test_retry_writes_the_next_version_at_the_same_status(site: Site) -> None:
    run_id = site.runs.failing[0]
    before = (await site.client.get(f"/api/runs/{run_id}")).json()
    retried = await site.client.post(
        f"/api/runs/{run_id}/retry", json={"reason": "carrier is back"}, headers=AUTH
    )
    after = retried.json()
    assert retried.status_code == 200
    assert (after["status"], after["run_state"]) == (before["status"], before["run_state"])
    assert after["version"] == before["version"] + 1
    assert after["reason"] == "retry requested: carrier is back"
    again = (await site.client.get(f"/api/runs/{run_id}")).json()
    assert "retry" not in again["actions"]  # the failure was on the version before


async def test_a_delete_keeps_the_reason_the_run_was_cancelled_for(site: Site) -> None:
    run_id = site.runs.cancelled[0]
    deleted = await site.client.post(f"/api/runs/{run_id}/delete", headers=AUTH)
    assert deleted.json()["run_state"] == "Requested Data Deleted"
    assert deleted.json()["reason"] == "duplicate order"
    store = site.backend.record_store
    assert isinstance(store, KeepsHistory)
    reasons = [(e.run_state, e.reason) for e in await store.history(run_id)]
    assert (RunState.CANCELLED, "duplicate order") in reasons


async def test_bulk_over_a_filter_moves_each_run_it_may_and_says_why_not(site: Site) -> None:
    body = {"filter": {"foreign_id_prefix": "parcel-"}, "reason": "warehouse closed"}
    result = (await site.client.post("/api/bulk/pause", json=body, headers=AUTH)).json()
    moved = {m["run_id"] for m in result["moved"]}
    assert moved == set(site.runs.waiting)
    assert all(m["run_state"] == "Paused" for m in result["moved"])
    refused = {r["run_id"]: r["reason"] for r in result["refused"]}
    assert set(refused) == {*site.runs.completed, *site.runs.paused, *site.runs.cancelled}
    assert "cannot pause a run that is Completed" in refused[site.runs.completed[0]]
    assert result["changed"] == []
    assert result["cursor"] is None


async def test_bulk_continues_with_its_cursor_without_repeating_runs(site: Site) -> None:
    seen: list[str] = []
    body: dict[str, object] = {"filter": {"run_state": ["running"]}, "limit": 4}
    rounds = 0
    while True:
        result = (await site.client.post("/api/bulk/cancel", json=body, headers=AUTH)).json()
        seen += [m["run_id"] for m in result["moved"]]
        rounds += 1
        if result["cursor"] is None:
            break
        body["cursor"] = result["cursor"]
    assert sorted(seen) == sorted(site.runs.waiting)
    assert rounds == 4
    left = (await site.client.get("/api/runs", params={"run_state": "running"})).json()
    assert left["runs"] == []


async def test_bulk_by_run_ids_at_listed_versions_leaves_changed_runs_alone(site: Site) -> None:
    listed = (await site.client.get("/api/runs", params={"run_state": "running"})).json()["runs"]
    moved_meanwhile = listed[0]["run_id"]
    await site.client.post(f"/api/runs/{moved_meanwhile}/pause", headers=AUTH)
    refs = [{"run_id": r["run_id"], "version": r["version"]} for r in listed[:3]]
    body = {"run_ids": [*refs, "ffffffff-0000-0000-0000-000000000000"]}
    result = (await site.client.post("/api/bulk/cancel", json=body, headers=AUTH)).json()
    assert result["changed"] == [moved_meanwhile]
    assert {m["run_id"] for m in result["moved"]} == {r["run_id"] for r in listed[1:3]}
    assert result["refused"] == [
        {"run_id": "ffffffff-0000-0000-0000-000000000000", "reason": "run not found"}
    ]
    paused = (await site.client.get(f"/api/runs/{moved_meanwhile}")).json()
    assert paused["run_state"] == "Paused"  # not cancelled on top of the newer version


async def test_bulk_needs_either_run_ids_or_a_filter(site: Site) -> None:
    bodies: list[dict[str, object]] = [{}, {"run_ids": [], "filter": {}}]
    for body in bodies:
        refused = await site.client.post("/api/bulk/pause", json=body, headers=AUTH)
        assert refused.status_code == 400, body
    too_many = {"run_ids": [f"r{i}" for i in range(1001)]}
    assert (
        await site.client.post("/api/bulk/pause", json=too_many, headers=AUTH)
    ).status_code == 422
