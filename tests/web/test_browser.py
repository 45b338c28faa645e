"""The web UI in a real browser: Debian's Chromium driven by Playwright.

Each test gets a store of its own (SQLite in a temporary directory) seeded by ``_seed.py``
and ``UIServer`` serving it on an event loop of its own in a background thread; the test
drives the browser with Playwright's sync API from the test's thread. The UI has no script,
so every step is a link, a GET form or a POST form; Playwright waits for each navigation
and ``expect`` waits for what the page must show. Without ``/usr/bin/chromium`` the tests
skip, except with ``CI=true``: then they fail (``tests/_services.py``).

The screenshot test takes the README's pictures; it writes them to ``docs/images/``
(``ui-runs.png``, ``ui-run.png``) only with ``CONVEYOR_SCREENSHOTS=1``, so an ordinary run
leaves the checkout as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import struct
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.sync_api import (
    Browser,
    Dialog,
    Locator,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)

from _services import unavailable
from conveyor import connect
from conveyor.web._serve import UIServer

from ._seed import INJECTED, Seeded, seed

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium phones home at start, and this machine's closed network
    # answers by refusing its connections.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "browser-test-token-5678"
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

T = TypeVar("T")


class Served:
    """A seeded store and the UI over it, on an event loop running in a thread of its own."""

    def __init__(self, db: Path) -> None:
        self.db_url = f"sqlite:///{db}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="ui-server", daemon=True
        )
        self._stack = contextlib.AsyncExitStack()
        self.seeded = Seeded()
        self.url = ""

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coro`` on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _open(self) -> None:
        backend = await self._stack.enter_async_context(connect(self.db_url))
        self.seeded = await seed(backend)
        server = UIServer(backend.record_store, host="127.0.0.1", port=0, token=TOKEN)
        await server.start()
        self._stack.push_async_callback(server.stop)
        self.url = server.url

    def __enter__(self) -> Served:
        self._thread.start()
        try:
            self.call(self._open())
        except BaseException:
            self.__exit__()
            raise
        return self

    async def _drain(self) -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._loop.shutdown_asyncgens()
        await self._loop.shutdown_default_executor()

    def __exit__(self, *_: object) -> None:
        try:
            self.call(self._stack.aclose())
            self.call(self._drain())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            if not self._thread.is_alive():
                self._loop.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        unavailable("Chromium", f"{CHROMIUM} is missing (Debian: apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def ui(tmp_path: Path) -> Iterator[Served]:
    with Served(tmp_path / "ui.db") as served:
        yield served


def new_page(browser: Browser, ui: Served, *, bypass_csp: bool = False) -> Page:
    context = browser.new_context(base_url=ui.url, viewport=VIEWPORT, bypass_csp=bypass_csp)
    context.set_default_timeout(15_000)
    return context.new_page()


@pytest.fixture
def page(browser: Browser, ui: Served) -> Iterator[Page]:
    opened = new_page(browser, ui)
    yield opened
    opened.context.close()


def rows(page: Page) -> Locator:
    """The run list's rows (one per run; "No runs match." has no ``data-run-id``)."""
    return page.locator("#runs tbody tr[data-run-id]")


def listed(page: Page) -> set[str]:
    """The run IDs the list shows, once it has settled on ``expect``'s count."""
    return {str(r.get_attribute("data-run-id")) for r in rows(page).all()}


def column(page: Page, n: int) -> Locator:
    """Cell ``n`` (1-based) of each row of the run list."""
    return rows(page).locator(f"td:nth-child({n})")


def log_in(page: Page, token: str = TOKEN) -> None:
    """Log in from the current page's "Log in" link (back on that page afterwards)."""
    page.locator("header").get_by_role("link", name="Log in to act").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Log in").click()


def logged_in(page: Page) -> None:
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    expect(page.locator("#read-only")).to_have_count(0)


def version(page: Page) -> int:
    """The version the run page's record shows."""
    row = page.locator("#record tr").filter(has=page.locator("th", has_text="Version"))
    return int(row.locator("td").inner_text())


def submit_filter(page: Page) -> None:
    page.locator("#filters").get_by_role("button", name="Filter").click()


def png_size(path: Path) -> tuple[int, int]:
    """A PNG's width and height (from its IHDR chunk), after checking it is one."""
    data = path.read_bytes()
    assert len(data) > 1000, f"{path} is (nearly) empty"
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_filter_form_narrows_the_list(page: Page, ui: Served) -> None:
    runs = ui.seeded
    page.goto("/")
    expect(rows(page)).to_have_count(len(runs.all()))

    page.locator("#filters").get_by_label("Run state").select_option(label="Paused")
    submit_filter(page)
    expect(page).to_have_url(re.compile(r"[?&]run_state=paused(&|$)"))
    paused = {*runs.paused, runs.injected}
    expect(rows(page)).to_have_count(len(paused))
    assert listed(page) == paused
    expect(column(page, 5).locator(".state")).to_have_text(["Paused"] * len(paused))
    expect(page.locator(".counts a[data-state=paused] strong")).to_have_text(str(len(paused)))

    page.locator("#filters").get_by_role("link", name="Clear").click()
    expect(rows(page)).to_have_count(len(runs.all()))
    page.locator("#filters").get_by_label("Foreign ID starts with").fill("parcel-0")
    submit_filter(page)
    expect(page).to_have_url(re.compile(r"[?&]foreign_id_prefix=parcel-0(&|$)"))
    parcels = {*runs.waiting, *runs.completed, *runs.paused, *runs.cancelled}
    expect(rows(page)).to_have_count(len(parcels))
    assert listed(page) == parcels
    for text in column(page, 3).all_inner_texts():
        assert text.startswith("parcel-0")

    page.locator("#filters").get_by_role("link", name="Clear").click()
    page.locator("#filters").get_by_label("Status").fill("PACKED")
    submit_filter(page)
    expect(page).to_have_url(re.compile(r"[?&]status=PACKED(&|$)"))
    packed = {*runs.waiting, *runs.paused, *runs.cancelled, runs.injected}
    expect(rows(page)).to_have_count(len(packed))
    assert listed(page) == packed
    expect(column(page, 4)).to_have_text(["PACKED"] * len(packed))
    expect(page.locator("#filters").get_by_label("Status")).to_have_value("PACKED")


def test_a_run_page_shows_record_object_history_and_diagram(page: Page, ui: Served) -> None:
    run_id = ui.seeded.waiting[0]  # parcel-04, waiting at the PACKED callback
    page.goto("/")
    rows(page).filter(has_text="parcel-04").get_by_role("link", name=run_id).click()

    expect(page).to_have_url(re.compile(rf"/runs/{run_id}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Run {run_id}")
    record = page.locator("#record")
    expect(record.locator("#foreign-id")).to_have_text("parcel-04")
    expect(record.locator("#status")).to_have_text("PACKED (2)")
    expect(record.locator("#run-state")).to_have_text("Running")
    expect(record).to_contain_text("parcels")

    text = page.locator("#object").inner_text()
    assert json.loads(text) == {"note": "parcel 4", "weight": 4}
    assert text == json.dumps({"note": "parcel 4", "weight": 4}, indent=2)

    now = version(page)
    entries = page.locator("#history ol.timeline > li")
    expect(entries).to_have_count(now)
    newest_first = [str(v) for v in range(now, 0, -1)]
    assert [e.get_attribute("data-version") for e in entries.all()] == newest_first
    expect(entries.first).to_contain_text(f"v{now}: PACKED, Running")
    expect(entries.last).to_contain_text("v1:")

    diagram = page.locator(".diagram-box svg.diagram")
    expect(diagram).to_be_visible()
    current = diagram.locator("g.status.current")
    expect(current).to_have_count(1)
    expect(current).to_have_attribute("data-status", "2")
    expect(current.locator("text")).to_have_text("PACKED")
    expect(diagram.locator("g.status")).to_have_count(4)  # PLACED, PACKED, SHIPPED, RETURNED


def test_read_only_without_the_token_and_a_login_with_it(page: Page, ui: Served) -> None:
    page.goto("/")
    expect(page.locator("#read-only")).to_have_text("Read-only")
    expect(page.locator("section.bulk")).to_contain_text("Log in to act on runs.")
    expect(page.locator("section.bulk a.button")).to_have_count(0)

    run_id = ui.seeded.waiting[0]
    page.goto(f"/runs/{run_id}")
    expect(page.locator("#read-only")).to_be_visible()
    actions = page.locator("#actions")
    expect(actions).to_contain_text("Allowed: pause, cancel.")
    expect(page.locator("form.action")).to_have_count(0)
    expect(page.locator("form[method=post]")).to_have_count(0)

    log_in(page, "not-the-token")
    expect(page.get_by_role("alert")).to_have_text("wrong token")
    expect(page.locator("#read-only")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/login$"))

    page.get_by_label("Token").fill(TOKEN)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(rf"/runs/{run_id}$"))
    logged_in(page)
    expect(page.locator("form.action")).to_have_count(2)
    expect(actions.get_by_role("button", name="Pause")).to_be_visible()
    expect(actions.get_by_role("button", name="Cancel")).to_be_visible()
    for form in page.locator("form[method=post]").all():
        expect(form.locator("input[type=hidden][name=csrf]")).to_have_count(1)

    page.goto("/")
    expect(page.locator("section.bulk").get_by_role("link", name="Cancel…")).to_be_visible()


def test_pause_and_resume_a_run(page: Page, ui: Served) -> None:
    run_id = ui.seeded.waiting[1]
    page.goto(f"/runs/{run_id}")
    log_in(page)
    logged_in(page)
    before = version(page)

    page.get_by_label("reason for pause").fill("address to be checked")
    page.locator("#actions").get_by_role("button", name="Pause").click()
    expect(page.locator("#done")).to_have_text("Done: pause")
    expect(page.locator("#run-state")).to_have_text("Paused")
    expect(page.locator("#reason")).to_have_text("address to be checked")

    page.locator("#actions").get_by_role("button", name="Resume").click()
    expect(page.locator("#done")).to_have_text("Done: resume")
    expect(page.locator("#run-state")).to_have_text("Running")
    expect(page.locator("#reason")).to_have_text("")

    entries = page.locator("#history ol.timeline > li")
    expect(entries).to_have_count(before + 2)
    resumed = entries.nth(0)
    paused = entries.nth(1)
    expect(resumed).to_have_attribute("data-version", str(before + 2))
    expect(resumed).to_contain_text(f"v{before + 2}: PACKED, Running")
    expect(paused).to_have_attribute("data-version", str(before + 1))
    expect(paused).to_contain_text(f"v{before + 1}: PACKED, Paused")
    expect(paused.locator(".reason")).to_have_text("address to be checked")


def test_retry_a_failing_run(page: Page, ui: Served) -> None:
    run_id = ui.seeded.failing[0]
    page.goto(f"/runs/{run_id}")
    failure = page.locator("#failure")
    expect(failure.locator("#next-attempt")).to_have_text(
        re.compile(r"^Next attempt: \d{4}-\d\d-\d\dT[\d:.]+\+00:00 \(UTC\)$")
    )
    # (The page shows the error type twice, "RuntimeError: RuntimeError: ...": the message
    # stored already starts with it.)
    expect(failure.locator("pre.message")).to_have_text(
        re.compile(r"RuntimeError: carrier <b>down</b>$")
    )
    expect(failure.locator("b")).to_have_count(0)
    expect(page.locator("#actions")).to_contain_text("retry")

    log_in(page)
    logged_in(page)
    entries = page.locator("#history ol.timeline > li")
    before = version(page)
    expect(entries).to_have_count(before)
    page.locator("#actions").get_by_role("button", name="Retry").click()

    expect(page.locator("#done")).to_have_text("Done: retry")
    expect(entries).to_have_count(before + 1)
    expect(entries.first.locator(".reason")).to_have_text("retry requested")
    # The retry writes the same status and run state at the next version (its first
    # attempt failed before the run left Initiated).
    expect(entries.first).to_contain_text(f"v{before + 1}: PLACED, Initiated")
    expect(page.locator("#run-state")).to_have_text("Initiated")
    expect(page.locator("#actions").get_by_role("button", name="Retry")).to_have_count(0)


def test_bulk_cancel_of_every_running_run(page: Page, ui: Served) -> None:
    running = set(ui.seeded.waiting)  # the failing runs are still Initiated
    page.goto("/")
    log_in(page)
    logged_in(page)
    page.locator("#filters").get_by_label("Run state").select_option(label="Running")
    submit_filter(page)
    expect(rows(page)).to_have_count(len(running))
    assert listed(page) == running

    page.locator("section.bulk").get_by_role("link", name="Cancel…").click()
    expect(page).to_have_url(re.compile(r"/bulk/cancel\?run_state=running$"))
    count = page.locator("#confirm-count")
    expect(count.locator("strong")).to_have_text(str(len(running)))
    expect(count).to_have_text(re.compile(rf"^This will cancel (the )?{len(running)} runs\b"))
    page.get_by_label("Reason").fill("warehouse closed")
    page.get_by_role("button", name="Yes, cancel them").click()

    expect(page.locator("#bulk-result")).to_have_text(
        f"{len(running)} moved, 0 changed meanwhile (left alone), 0 refused."
    )
    page.get_by_role("link", name="Back to the runs").click()
    expect(page).to_have_url(re.compile(r"/\?run_state=running$"))
    expect(page.locator("#runs tbody")).to_have_text("No runs match.")
    expect(rows(page)).to_have_count(0)
    expect(page.locator(".counts a[data-state=running] strong")).to_have_text("0")
    cancelled = len(running) + len(ui.seeded.cancelled)
    expect(page.locator(".counts a[data-state=cancelled] strong")).to_have_text(str(cancelled))


def test_injected_markup_renders_as_text(browser: Browser, ui: Served) -> None:
    # Without the CSP (which would stop an inline script anyway) a dialog would show that
    # the markup reached the page as markup: only the escaping stands between them.
    page = new_page(browser, ui, bypass_csp=True)
    dialogs: list[str] = []

    def opened(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", opened)
    try:
        page.goto("/")
        row = page.locator(f'#runs tbody tr[data-run-id="{ui.seeded.injected}"]')
        expect(row.locator("td").nth(2)).to_have_text(f"evil-{INJECTED}")
        expect(row.locator(".reason")).to_have_text(f"reason {INJECTED}")
        expect(page.locator("script")).to_have_count(0)

        row.get_by_role("link", name=ui.seeded.injected).click()
        expect(page.locator("#foreign-id")).to_have_text(f"evil-{INJECTED}")
        expect(page.locator("#reason")).to_have_text(f"reason {INJECTED}")
        expect(page.locator("#object")).to_contain_text('"note": "<script>alert(\\"x\\")</script>"')
        assert json.loads(page.locator("#object").inner_text())["note"] == INJECTED
        expect(page.locator("#history .reason").first).to_have_text(f"reason {INJECTED}")
        expect(page.locator("script")).to_have_count(0)
        assert dialogs == []
    finally:
        page.context.close()


def test_screenshots_for_the_readme(page: Page, ui: Served, tmp_path: Path) -> None:
    folder = IMAGES if os.environ.get("CONVEYOR_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    runs_png, run_png = folder / "ui-runs.png", folder / "ui-run.png"

    page.goto("/")
    log_in(page)
    logged_in(page)
    page.goto("/?foreign_id_prefix=parcel-")  # the seeded runs, without the markup test's
    expect(rows(page)).to_have_count(len(ui.seeded.all()) - 3)
    page.screenshot(path=runs_png)
    assert png_size(runs_png) == (VIEWPORT["width"], VIEWPORT["height"])

    page.goto(f"/runs/{ui.seeded.failing[0]}")
    expect(page.locator("#next-attempt")).to_be_visible()
    expect(page.locator("svg.diagram g.status.current")).to_have_count(1)
    page.screenshot(path=run_png, full_page=True)
    width, height = png_size(run_png)
    assert width == VIEWPORT["width"]
    assert height >= VIEWPORT["height"]
