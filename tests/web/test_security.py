"""Who may read and act: the token, the UI's session and CSRF value, the Host check, and
escaping of everything a run holds."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from conveyor import connect
from conveyor.web import create_app

from ._seed import INJECTED, seed
from .conftest import AUTH, TOKEN, Site

RUN = "00000000-0000-0000-0000-000000000000"
ACTIONS = ("pause", "resume", "cancel", "delete", "retry")


def mutating_api_routes(run_id: str) -> list[tuple[str, dict[str, object]]]:
    routes: list[tuple[str, dict[str, object]]] = [
        (f"/api/runs/{run_id}/{a}", {"reason": "x"}) for a in ACTIONS
    ]
    routes += [(f"/api/bulk/{a}", {"filter": {}}) for a in ACTIONS]
    return routes


@pytest.mark.parametrize("auth", [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer"])
async def test_every_mutating_api_route_needs_the_token(site: Site, auth: str | None) -> None:
    headers = {} if auth is None else {"Authorization": auth}
    run_id = site.runs.waiting[0]
    before = (await site.client.get("/api/runs", params={"limit": 100})).json()
    for path, body in mutating_api_routes(run_id):
        response = await site.client.post(path, json=body, headers=headers)
        assert response.status_code == 401, path
        assert response.json()["error"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"
    after = (await site.client.get("/api/runs", params={"limit": 100})).json()
    assert after == before  # nothing moved


async def test_the_ui_session_cookie_does_not_authorize_the_api(site: Site) -> None:
    await login(site.client)
    response = await site.client.post(f"/api/runs/{site.runs.waiting[0]}/pause", json={})
    assert response.status_code == 401


async def login(client: httpx.AsyncClient, token: str = TOKEN) -> httpx.Response:
    return await client.post("/login", data={"token": token, "next": "/"})


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


async def test_ui_forms_need_the_session_and_its_csrf_value(site: Site) -> None:
    run_id = site.runs.waiting[0]
    client = site.client
    anonymous = await client.post(f"/runs/{run_id}/pause", data={"csrf": "0" * 64})
    assert anonymous.status_code == 401
    assert (await login(client, "wrong")).status_code == 401
    logged = await login(client)
    assert logged.status_code == 303
    cookie = logged.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert TOKEN not in logged.headers["set-cookie"]  # the cookie is an HMAC of it
    for csrf in ("", "0" * 64):
        forged = await client.post(f"/runs/{run_id}/pause", data={"csrf": csrf})
        assert forged.status_code == 403, csrf
    page = await client.get(f"/runs/{run_id}")
    done = await client.post(
        f"/runs/{run_id}/pause", data={"csrf": csrf_of(page.text), "reason": "by hand"}
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/runs/{run_id}?done=pause"
    record = (await client.get(f"/api/runs/{run_id}")).json()
    assert (record["run_state"], record["reason"]) == ("Paused", "by hand")


async def test_ui_bulk_and_logout_need_the_csrf_value_too(site: Site) -> None:
    await login(site.client)
    bulk = await site.client.post("/bulk/cancel", data={"run_state": "running"})
    assert bulk.status_code == 403
    assert (await site.client.post("/logout", data={})).status_code == 403
    running = await site.client.get("/api/runs", params={"run_state": "running"})
    assert len(running.json()["runs"]) == len(site.runs.waiting)


async def test_without_the_token_the_ui_is_read_only(site: Site) -> None:
    page = await site.client.get(f"/runs/{site.runs.waiting[0]}")
    assert page.status_code == 200
    assert 'id="read-only"' in page.text
    assert 'name="csrf"' not in page.text
    assert '<form method="post" action="/runs/' not in page.text
    await login(site.client)
    page = await site.client.get(f"/runs/{site.runs.waiting[0]}")
    assert 'id="read-only"' not in page.text
    assert 'action="/runs/' in page.text


async def test_login_redirects_only_within_the_app(site: Site) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "javascript:alert(1)"):
        response = await site.client.post("/login", data={"token": TOKEN, "next": target})
        assert response.headers["location"] == "/", target


@pytest.fixture
async def public_site() -> AsyncIterator[httpx.AsyncClient]:
    """The app as ``conveyor ui --host 0.0.0.0`` makes it: reads need the token too."""
    async with connect("memory://") as backend:
        await seed(backend)
        app = create_app(
            backend.record_store, token=TOKEN, reads_need_token=True, allowed_hosts=["*"]
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://10.1.2.3") as client:
            yield client


async def test_bound_beyond_loopback_reads_need_the_token(public_site: httpx.AsyncClient) -> None:
    for path in ("/api/runs", "/api/workflows"):
        assert (await public_site.get(path)).status_code == 401, path
        assert (await public_site.get(path, headers=AUTH)).status_code == 200, path
    page = await public_site.get("/")
    assert page.status_code == 401
    assert 'name="token"' in page.text
    assert "parcel-" not in page.text
    await login(public_site)
    assert "parcel-" in (await public_site.get("/")).text


@pytest.mark.parametrize("host", ["evil.example", "rebind.attacker.test:8000", "10.0.0.1"])
async def test_a_foreign_host_header_is_refused(site: Site, host: str) -> None:
    for path in ("/", "/api/runs"):
        response = await site.client.get(path, headers={"host": host})
        assert response.status_code == 400, (host, path)


async def test_pages_forbid_scripts_and_framing(site: Site) -> None:
    response = await site.client.get("/")
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src" not in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-frame-options"] == "DENY"


async def test_markup_in_foreign_ids_reasons_objects_and_errors_renders_as_text(
    site: Site,
) -> None:
    escaped = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"
    await login(site.client)
    pages = {
        "list": await site.client.get("/"),
        "filtered": await site.client.get("/", params={"foreign_id_prefix": "evil-"}),
        "run": await site.client.get(f"/runs/{site.runs.injected}"),
        "confirm": await site.client.get("/bulk/cancel", params={"foreign_id": f"evil-{INJECTED}"}),
        "error": await site.client.get("/", params={"status": INJECTED}),
        "missing": await site.client.get(f"/runs/{INJECTED}"),
    }
    for name, page in pages.items():
        assert INJECTED not in page.text, name
        assert "<script" not in page.text, name
    assert escaped in pages["filtered"].text
    run = pages["run"].text
    assert run.count("&lt;script&gt;") >= 3  # foreign ID, reason, object
    failing = await site.client.get(f"/runs/{site.runs.failing[0]}")
    assert "carrier &lt;b&gt;down&lt;/b&gt;" in failing.text
