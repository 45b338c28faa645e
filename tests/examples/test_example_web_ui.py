"""examples/web_ui.py: the seeded runs, paused and cancelled ones too, show in the UI and
its API, served in-process by ``conveyor.web.create_app``."""

from __future__ import annotations

from pathlib import Path

import httpx
import web_ui

from conveyor import RunState, connect
from conveyor.web import create_app

TOKEN = "example-token-1234"


async def test_the_seeded_runs_show_in_the_ui_and_the_api(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'web_ui.db'}"
    seeded = await web_ui.seed(url)
    states = sorted(seeded.values())
    assert states.count(RunState.PAUSED) == 1
    assert states.count(RunState.CANCELLED) == 2  # one of them cancelled while Initiated
    assert states.count(RunState.COMPLETED) == 2

    async with connect(url) as backend:
        app = create_app(backend.record_store, token=TOKEN)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            listed = (await client.get("/api/runs", params={"limit": 50})).json()["runs"]
            assert {r["run_id"] for r in listed} == set(seeded)
            paused = await client.get("/api/runs", params={"run_state": "paused"})
            assert [r["foreign_id"] for r in paused.json()["runs"]] == ["parcel-2"]
            cancelled = await client.get("/api/runs", params={"run_state": "cancelled"})
            assert sorted(r["foreign_id"] for r in cancelled.json()["runs"]) == [
                "parcel-3",
                "parcel-late",
            ]

            page = await client.get("/", params={"run_state": "cancelled"})
            assert page.status_code == 200
            assert "parcel-late" in page.text
            assert "parcel-3" in page.text
            one = next(r for r, s in seeded.items() if s is RunState.PAUSED)
            run_page = await client.get(f"/runs/{one}")
            assert "customer asked to hold it" in run_page.text
