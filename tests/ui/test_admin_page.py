"""The admin page in headless Debian Chromium against `slipstream up`: an operator adds a
source (the demo's keyed page, which needs a header), a viewer sees its stream appear on the
session page, the operator edits the header and the stream is resolved again with it. No
header value ever reaches the browser after it was typed in."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import nats
import pytest
from playwright.sync_api import Browser, Response, expect

from shared import topology
from shared.codec import decode
from shared.streams import StreamRecord
from tests.procs import login
from tests.ui.test_browser import DESKTOP, Console, System, browser, shot, system

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
__all__ = ["browser", "system"]  # the fixtures, shared with the viewer's tests

FIRST, SECOND = "alpha-key-111", "beta-key-222"


async def _upstream(system: System, key: str) -> str:
    nc = await nats.connect(system.nats_url, connect_timeout=2, **login(system.data, "ops"))
    try:
        kv = await topology.streams_kv(nc.jetstream())
        try:
            entry = await kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            return ""
        return decode(entry.value, StreamRecord).upstream_url if entry.value else ""
    finally:
        await nc.close()


def upstream(system: System, key: str) -> str:
    """The upstream URL of a stream record (the private side: only tests and services read it)."""
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API holds this thread's loop
        return pool.submit(asyncio.run, _upstream(system, key)).result()


def wait_for(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_the_admin_page_adds_a_source_viewers_see_and_edits_its_header(
        system: System, browser: Browser) -> None:
    """Sign in with the admin token (a wrong one is refused), add the keyed page with its
    header, see its stream on the viewer's session page, edit the header (the saved value is
    never shown) and see the stream resolved with the new one; check now lists candidates."""
    assert system.data is not None
    token = (system.data / "admin.token").read_text().strip()
    live = httpx.get(f"{system.gateway}/api/live", timeout=5).json()
    session = next(s["session"]["key"] for s in live if s["session"]["key"].endswith(".demo.sprint"))
    key = f"{session}.keyed"

    page = browser.new_page(viewport=DESKTOP)  # type: ignore[arg-type]
    console = Console(page)
    answers: list[Response] = []
    page.on("response", lambda r: answers.append(r) if "/api/admin/" in r.url else None)
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{system.gateway}/#/admin")

    page.locator("[data-admin-token]").fill("not-the-admin-token-0000")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("[data-admin-problem]")).to_contain_text("refused")
    page.locator("[data-admin-token]").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("[data-admin-who]")).to_contain_text("admin")
    expect(page.locator("[data-source-row=demo-plain]")).to_be_visible(timeout=10_000)

    page.locator("[data-admin-add]").click()
    form = page.locator("[data-admin-form=add]")
    form.locator("input[name=id]").fill("keyed")
    form.locator("input[name=name]").fill("Keyed by the admin")
    form.locator("input[name=url]").fill(f"{system.demo}/pages/keyed")
    form.locator("input[name=priority]").fill("50")
    form.get_by_label("Header name").fill("X-Demo-Key")
    form.get_by_label("Header value").fill(FIRST)
    form.locator("[data-admin-save]").click()
    row = page.locator("[data-source-row=keyed]")
    expect(row).to_contain_text("Keyed by the admin")
    expect(row.locator("[data-source-secrets]")).to_contain_text("X-Demo-Key: ••••••")

    viewer = browser.new_page(viewport=DESKTOP)  # type: ignore[arg-type]
    viewer.goto(f"{system.gateway}/#/session/{session}")
    stream = viewer.locator("[data-stream=keyed]")
    expect(stream).to_contain_text("Keyed by the admin", timeout=15_000)
    expect(stream.locator("[data-badge=ok]")).to_be_visible(timeout=15_000)
    assert f"key={FIRST}" in upstream(system, key)
    expect(row.locator("[data-streams-now]")).not_to_have_text("0", timeout=10_000)
    shot(page, "admin-sources")

    row.locator("[data-admin-edit]").click()
    edit = page.locator("[data-admin-form=edit]")
    value = edit.get_by_label("Header value")
    assert value.input_value() == ""  # the saved value is not in the page
    value.fill(SECOND)
    edit.locator("[data-admin-save]").click()
    expect(page.locator("[data-admin-form=edit]")).to_have_count(0)
    wait_for(lambda: f"key={SECOND}" in upstream(system, key), 15,
             "the stream resolved again with the new header")
    expect(stream.locator("[data-badge=ok]")).to_be_visible(timeout=15_000)

    row.locator("[data-admin-check]").click()
    result = page.locator("[data-check-result=keyed]")
    expect(result.locator("[data-candidate=accepted]").first).to_be_visible(timeout=90_000)
    shot(page, "admin-check")

    row.locator("[data-admin-remove]").click()
    expect(page.locator("[data-source-row=keyed]")).to_have_count(0, timeout=10_000)
    expect(viewer.locator("[data-stream=keyed]")).to_have_count(0, timeout=10_000)

    for answer in answers:
        body = answer.text()
        assert FIRST not in body
        assert SECOND not in body
    viewer.close()
    page.close()
    # the wrong token's 401 is the one failed request the page made
    assert [p for p in console.problems if "401" not in p] == []
