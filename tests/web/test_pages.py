"""The UI's pages, read as HTML: counts, filters, the run page, bulk confirmation."""

from __future__ import annotations

import re

from .conftest import Site
from .test_security import csrf_of, login


def rows(html: str) -> list[str]:
    return re.findall(r'<tr data-run-id="([0-9a-f-]+)">', html)


async def test_the_list_shows_newest_runs_with_capped_state_counts(site: Site) -> None:
    page = (await site.client.get("/")).text
    assert len(rows(page)) == len(site.runs.all())
    counts = dict(re.findall(r'data-state="(\w+)">[^<]+<strong>([\d,+]+)</strong>', page))
    assert counts["running"] == str(len(site.runs.waiting))
    assert counts["paused"] == "2"
    assert counts["initiated"] == "2"
    assert counts["completed"] == "2"


async def test_the_list_filters_by_form_values(site: Site) -> None:
    paused = (await site.client.get("/", params={"run_state": "paused"})).text
    assert set(rows(paused)) == {*site.runs.paused, site.runs.injected}
    packed = (await site.client.get("/", params={"status": "PACKED", "workflow": "parcels"})).text
    assert set(rows(packed)) == {
        *site.runs.waiting,
        *site.runs.paused,
        *site.runs.cancelled,
        site.runs.injected,
    }
    bad = await site.client.get("/", params={"status": "nope"})
    assert bad.status_code == 200
    assert "status &#39;nope&#39; is not a status" in bad.text  # beside the form, to mend


async def test_the_next_page_link_carries_the_filter_and_the_cursor(site: Site) -> None:
    first = (await site.client.get("/", params={"limit": 5, "run_state": "running"})).text
    link = re.search(r'href="\?([^"]+)" id="next-page"', first)
    assert link is not None
    query = link.group(1).replace("&amp;", "&")
    assert "run_state=running" in query
    assert "cursor=" in query
    second = (await site.client.get(f"/?{query}&limit=5")).text
    assert not set(rows(first)) & set(rows(second))
    assert set(rows(second)) <= set(site.runs.waiting)


async def test_the_run_page_shows_object_failure_history_diagram_and_actions(
    site: Site,
) -> None:
    page = (await site.client.get(f"/runs/{site.runs.failing[0]}")).text
    assert "&#34;note&#34;: &#34;heavy&#34;" in page  # the object, indented JSON
    assert 'id="failure"' in page
    assert "Next attempt:" in page
    assert page.count('<li data-version="') == 1
    assert '<g class="status current" data-status="1">' in page
    assert 'Allowed: pause, retry. <a href="/login' in page  # read-only: what, and a login


async def test_the_bulk_confirmation_counts_the_runs_it_will_touch(site: Site) -> None:
    await login(site.client)
    page = (await site.client.get("/bulk/cancel", params={"workflow": "parcels"})).text
    count = len(site.runs.waiting) + len(site.runs.paused) + 1  # Running or Paused
    assert f"<strong>{count}</strong> runs" in page
    assert "Running or Paused" in page
    done = await site.client.post(
        "/bulk/cancel", data={"csrf": csrf_of(page), "workflow": "parcels", "reason": "closed"}
    )
    assert re.search(rf'id="bulk-result">{count} moved, 0 changed meanwhile', done.text)
    left = (await site.client.get("/api/runs", params={"run_state": ["running", "paused"]})).json()
    assert left["runs"] == []


async def test_the_workflows_page_draws_each_registered_definition(site: Site) -> None:
    page = (await site.client.get("/workflows")).text
    assert '<svg class="diagram"' in page
    assert page.count('<g class="status') == 4  # PLACED, PACKED, SHIPPED, RETURNED
    assert "definition version 1" in page
