"""The web UI as a viewer sees it: headless Debian Chromium, driven by Playwright, against the
whole system started by ``slipstream up`` (real NATS, services, demo origin, built UI).

Screenshots of the pages land in ``test-artifacts/`` (``SLIPSTREAM_TEST_ARTIFACTS`` to move it).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import nats
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from services.gateway.app import create_app
from services.scheduler.publisher import Publisher, read_state
from shared import subjects, topology
from shared.channels import ChannelSwitch, SwitchReason
from shared.codec import decode, encode
from shared.kv import keys as kv_keys
from shared.sessions import Live, Session, SessionKind
from shared.settings import load_settings
from shared.streams import StreamRecord
from tests.conftest import free_ports
from tests.procs import ROOT, Proc, base_env, children_of, login, module, status, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ARTIFACTS = Path(os.environ.get("SLIPSTREAM_TEST_ARTIFACTS", ROOT / "test-artifacts"))
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


class System:
    def __init__(self, proc: Proc, ports: dict[str, int], nats_url: str, data: Path) -> None:
        self.proc, self.nats_url, self.data = proc, nats_url, data
        self.demo = f"http://127.0.0.1:{ports['demo']}"
        self.gateway = f"http://127.0.0.1:{ports['gateway']}"
        self.relay = f"http://127.0.0.1:{ports['relay']}"


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    if not (ROOT / "ui" / "dist" / "index.html").exists():
        pytest.fail("the web UI is not built: run `make test` (scripts/bootstrap builds it)")
    tmp = tmp_path_factory.mktemp("ui")
    names = ("gateway", "relay", "scheduler", "extractor", "demo")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    env = base_env(tmp / "data", **{f"SLIPSTREAM_{n.upper()}_PORT": str(p) for n, p in ports.items()})
    proc = Proc([*module("services.cli"), "up"], env)
    try:
        proc.wait_for("Slipstream is ready", timeout=120)
        runtime = json.loads((tmp / "data" / "runtime.json").read_text())
        yield System(proc, ports, runtime["nats_url"], tmp / "data")
    finally:
        proc.stop(signal.SIGTERM)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: scripts/bootstrap installs it"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--autoplay-policy=no-user-gesture-required"])
        yield browser
        browser.close()


class Console:
    """Errors and warnings the page logged, and uncaught exceptions."""

    def __init__(self, page: Page) -> None:
        self.problems: list[str] = []
        page.on("console", self._message)
        page.on("pageerror", lambda exc: self.problems.append(f"uncaught: {exc}"))

    def _message(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(f"{message.type}: {message.text}")


def open_page(browser: Browser, url: str, viewport: dict[str, int]) -> tuple[Page, Console]:
    page = browser.new_page(viewport=viewport)  # type: ignore[arg-type]
    console = Console(page)
    page.goto(url)
    return page, console


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


def current_times(page: Page) -> list[float]:
    return page.eval_on_selector_all("video", "els => els.map(v => v.currentTime)")  # type: ignore[no-any-return]


def test_home_shows_the_live_demo_session_on_desktop_and_phone(system: System, browser: Browser) -> None:
    for name, viewport in (("home", DESKTOP), ("home-phone", PHONE)):
        page, console = open_page(browser, system.gateway + "/", viewport)
        expect(page.locator("[data-connection=live]")).to_be_visible(timeout=15_000)
        card = page.locator("[data-live-session$='.demo.sprint']")
        expect(card).to_contain_text("Sprint")
        expect(card).to_contain_text("3 streams", timeout=30_000)
        # the next session, counted down, and the calendar with past and future sessions
        expect(page.locator("[data-countdown]")).to_have_text(re.compile(r"^(\d+d )?\d\d:\d\d:\d\d$"))
        expect(page.get_by_role("heading", name="Calendar")).to_be_visible()
        expect(page.locator("[data-badge=ended]").first).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        shot(page, name)
        page.close()
        assert console.problems == []


def test_the_session_page_plays_through_the_relay_with_a_multi_view(
        system: System, browser: Browser) -> None:
    page = browser.new_page(viewport=DESKTOP)  # type: ignore[arg-type]
    console = Console(page)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(system.gateway + "/")
    page.locator("[data-live-session$='.demo.sprint']").click()
    rows = page.locator("[data-stream]")
    expect(rows).to_have_count(3, timeout=30_000)
    expect(rows.locator("[data-badge=ok]")).to_have_count(3, timeout=30_000)
    expect(rows.first).to_contain_text("360p")

    # The session's channel ("Auto (best source)") plays on its own once the relay has put a
    # stream on air; watching one stream plays that one alone.
    expect(page.locator("[data-player='~auto']")).to_have_count(1, timeout=30_000)
    rows.first.get_by_role("button", name="Watch", exact=True).click()
    expect(page.locator("[data-player='~auto']")).to_have_count(0)
    # That stream plays: hls.js through the relay, time advancing.
    video = page.locator("video")
    expect(video).to_have_count(1)
    src = page.eval_on_selector("video", "v => v.src")
    assert src.startswith("blob:")  # media source extensions, fed by hls.js
    page.wait_for_function("document.querySelector('video').currentTime > 1", timeout=30_000)
    first = current_times(page)[0]  # and it keeps advancing (not one buffered burst)
    page.wait_for_function(f"document.querySelector('video').currentTime > {first + 1}",
                           timeout=15_000)
    # quality switch: automatic plus each rendition of the master playlist
    options = page.locator("[data-player] select option").all_inner_texts()
    assert options[0].startswith("Auto")
    assert {"360p", "180p"} <= set(options[1:])
    page.locator("[data-player] select").select_option(label="180p")
    shot(page, "session")

    # Multi-view: add the two other streams; three players play side by side.
    # (dispatched clicks: with videos decoding on 2 cores, Chromium's frames come too slowly
    # for Playwright's "stable" check; each click waits for the player it adds)
    add = page.get_by_role("button", name="Add to view")
    for players in (2, 3):
        add.first.dispatch_event("click")
        expect(page.locator("video")).to_have_count(players)
    expect(add).to_have_count(0)
    expect(page.locator("video")).to_have_count(3)
    page.wait_for_function(
        "[...document.querySelectorAll('video')].every(v => v.currentTime > 1)", timeout=30_000)
    assert "view=" in page.url
    shot(page, "session-multiview")
    page.close()
    assert console.problems == []
    # Everything came from the gateway and the relay: the browser never met the origin.
    assert any(url.startswith(system.relay) and url.endswith(".ts") for url in requested)
    strangers = {url for url in requested if not url.startswith((system.gateway, system.relay))}
    assert strangers == set()


# An iPhone's browser, as far as the player can tell: no Media Source Extensions, so hls.js
# cannot run, and the <video> element plays HLS by itself (Chromium does too, as Safari does).
NO_MSE = """
for (const name of ["MediaSource", "ManagedMediaSource", "WebKitMediaSource"]) {
  Object.defineProperty(window, name, { value: undefined, configurable: true, writable: true });
}
"""


def open_native_player(system: System, browser: Browser) -> tuple[Page, Console]:
    page = browser.new_page(viewport=PHONE)  # type: ignore[arg-type]
    page.add_init_script(NO_MSE)
    console = Console(page)
    page.goto(system.gateway + "/")
    page.locator("[data-live-session$='.demo.sprint']").click()
    expect(page.locator("[data-player]")).to_have_count(1, timeout=30_000)
    return page, console


def test_without_hls_js_the_browsers_own_player_plays_and_leaves_loading(
        system: System, browser: Browser) -> None:
    """The native path (iPhones): the relay's playlist is the video's own source, and the
    element's events end "Loading…" once it plays."""
    page, console = open_native_player(system, browser)
    player = page.locator("[data-player]")
    page.wait_for_function("document.querySelector('video')?.src", timeout=30_000)
    assert page.eval_on_selector("video", "v => v.src").startswith(system.relay)  # no blob: no hls.js
    page.wait_for_function("document.querySelector('video').currentTime > 1", timeout=30_000)
    expect(player.get_by_text("Loading…")).to_have_count(0, timeout=5_000)
    expect(player.locator("[role=alert]")).to_have_count(0)
    shot(page, "session-native-hls")
    page.close()
    assert console.problems == []


def test_without_hls_js_a_refused_stream_is_said_in_words(system: System, browser: Browser) -> None:
    """The native path with the relay refusing the playlist: the player says so instead of
    "Loading…" for ever."""
    page = browser.new_page(viewport=PHONE)  # type: ignore[arg-type]
    page.add_init_script(NO_MSE)
    refused: list[str] = []

    def refuse(route: Any) -> None:
        refused.append(route.request.url)
        route.fulfill(status=403, body="refused")

    page.route(re.compile(r"/master\.m3u8$"), refuse)
    page.goto(system.gateway + "/")
    page.locator("[data-live-session$='.demo.sprint']").click()
    alert = page.locator("[data-player] [role=alert]")
    expect(alert).to_contain_text("cannot be played", timeout=30_000)
    expect(alert).to_contain_text("refused or expired")
    expect(page.locator("[data-player]").get_by_text("Loading…")).to_have_count(0)
    assert refused  # the relay's playlist was asked for, and refused
    assert all(url.startswith(system.relay) for url in refused)
    page.close()


async def _go_live(nats_url: str, session: Session, data: Path) -> None:
    nc = await nats.connect(nats_url, **login(data, "scheduler"))
    try:
        js = nc.jetstream()
        kv = await topology.sessions_kv(js)
        await Publisher(js, kv, await read_state(kv)).publish(
            Live(session=session, at=datetime.now(UTC)))
    finally:
        await nc.drain()


def test_streams_the_extractor_publishes_appear_without_reload(system: System, browser: Browser) -> None:
    # A session of a season the scheduler does not manage, so nothing but this test moves it.
    start = datetime.now(UTC).replace(microsecond=0)
    session = Session(key="2099.browser.race", season=2099, round=1, event="Browser Grand Prix",
                      kind=SessionKind.RACE, name="Race", start=start,
                      end=start + timedelta(hours=2))
    page, console = open_page(browser, f"{system.gateway}/#/session/{session.key}", PHONE)
    expect(page.locator("[data-connection=live]")).to_be_visible(timeout=15_000)
    page.evaluate("window.__sameDocument = true")

    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API owns this thread's event loop
        pool.submit(asyncio.run, _go_live(system.nats_url, session, system.data)).result(timeout=30)
    # The session arrives on the feed, then the extractor resolves the demo sources for it.
    expect(page.get_by_role("heading", name="Race")).to_be_visible(timeout=15_000)
    expect(page.locator("[data-stream]")).to_have_count(3, timeout=60_000)
    expect(page.locator("[data-stream] [data-badge=ok]")).to_have_count(3, timeout=60_000)
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    page.wait_for_function("document.querySelector('video')?.currentTime > 1", timeout=30_000)
    shot(page, "session-phone")
    page.close()
    assert console.problems == []


async def _copy_demo_stream(nats_url: str, session: Session, stream_id: str, data: Path) -> str:
    """Put a copy of a demo sprint stream's record under ``session`` as ``stream_id`` (no
    source has that id, so no extractor job ever touches it); return its key."""
    nc = await nats.connect(nats_url, **login(data, "extractor"))
    try:
        js = nc.jetstream()
        kv = await topology.streams_kv(js)
        demo = next(k for k in await kv_keys(kv, "*.demo.sprint.*"))
        record = decode((await kv.get(demo)).value or b"", StreamRecord)
        key = f"{session.key}.{stream_id}"
        await kv.put(key, encode(msgspec.structs.replace(
            record, id=stream_id, session=session.key, title="Lost feed")))
        return key
    finally:
        await nc.drain()


async def _kv(nats_url: str, data: Path, action: str, key: str, value: bytes = b"") -> bytes:
    nc = await nats.connect(nats_url, **login(data, "extractor"))
    try:
        kv = await topology.streams_kv(nc.jetstream())
        if action == "get":
            return (await kv.get(key)).value or b""
        if action == "purge":
            await kv.purge(key)
        elif action == "delete":
            await kv.delete(key)
        else:
            await kv.put(key, value)
        return b""
    finally:
        await nc.drain()


def test_a_stream_lost_behind_the_systems_back_shows_re_resolving(
        system: System, browser: Browser) -> None:
    """A stream record purged behind the system's back: the page says it is being re-resolved,
    offers no link to it, and the player says so; when the record is back it plays on."""
    start = datetime.now(UTC).replace(microsecond=0)
    session = Session(key="2099.lost.race", season=2099, round=1, event="Lost Grand Prix",
                      kind=SessionKind.RACE, name="Race", start=start,
                      end=start + timedelta(hours=2))
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API owns this thread's event loop
        def run(coro: Any) -> Any:
            return pool.submit(asyncio.run, coro).result(timeout=30)

        run(_go_live(system.nats_url, session, system.data))
        key = run(_copy_demo_stream(system.nats_url, session, "lost-feed", system.data))
        record = run(_kv(system.nats_url, system.data, "get", key))
        page, _ = open_page(browser, f"{system.gateway}/#/session/{session.key}?view=lost-feed",
                            DESKTOP)
        page.wait_for_function("document.querySelector('video')?.currentTime > 1", timeout=30_000)
        run(_kv(system.nats_url, system.data, "purge", key))
        row = page.locator("[data-stream=lost-feed]")
        expect(row.locator("[data-badge=reresolving]")).to_have_text("re-resolving…",
                                                                     timeout=10_000)
        expect(row.get_by_role("button", name="Watch")).to_be_disabled()
        expect(page.locator("[data-player=lost-feed] [role=alert]")).to_contain_text(
            "Re-resolving this stream")
        shot(page, "re-resolving")
        run(_kv(system.nats_url, system.data, "put", key, record))
        expect(row.locator("[data-badge=ok]")).to_be_visible(timeout=10_000)
        expect(row.get_by_role("button", name="Watch")).to_be_enabled()
        back = current_times(page)[0]
        page.wait_for_function(f"document.querySelector('video').currentTime > {back + 4}",
                               timeout=60_000)
        page.close()


def test_the_connection_state_shows_and_recovers_when_the_gateway_restarts(
        system: System, browser: Browser) -> None:
    page, _ = open_page(browser, system.gateway + "/", DESKTOP)
    expect(page.locator("[data-connection=live]")).to_be_visible(timeout=15_000)
    gateway = next(p for p in children_of(system.proc.popen.pid)
                   if "services.gateway" in Path(f"/proc/{p}/cmdline").read_text())
    os.kill(gateway, signal.SIGKILL)
    expect(page.locator("[data-connection=reconnecting]")).to_be_visible(timeout=10_000)
    expect(page.locator("[data-connection=reconnecting]")).to_contain_text("Reconnecting")
    # `slipstream up` restarts the gateway; the page reconnects by itself and gets a snapshot.
    expect(page.locator("[data-connection=live]")).to_be_visible(timeout=60_000)
    expect(page.locator("[data-live-session$='.demo.sprint']")).to_contain_text("streams")
    page.close()


def test_a_gateway_with_a_token_asks_for_it_once(
        browser: Browser, nats_url: str, serve: Callable[..., str], tmp_path: Path) -> None:
    token = "ui-token-0123456789abcdef"
    port = free_ports(1)[0]
    settings = load_settings(env={"SLIPSTREAM_DATA_DIR": str(tmp_path), "SLIPSTREAM_GATEWAY_PORT": str(port),
                                  "SLIPSTREAM_GATEWAY_TOKEN": token})
    base = serve(create_app(settings, [nats_url]), port=port)
    page, _ = open_page(browser, base + "/", DESKTOP)
    locked = page.locator("[data-connection=locked]")
    expect(locked).to_contain_text("needs an access token", timeout=15_000)
    page.get_by_placeholder("access token").fill(token)
    page.get_by_role("button", name="Connect").click()
    expect(page.locator("[data-connection=live]")).to_be_visible(timeout=15_000)
    assert token in page.get_by_role("link", name="M3U of live streams").get_attribute("href") or ""
    page.reload()  # kept by the browser: no second prompt
    expect(page.locator("[data-connection=live]")).to_be_visible(timeout=15_000)
    page.close()


def test_a_player_keeps_playing_through_a_relay_restart(system: System, browser: Browser) -> None:
    """The relay is SIGKILLed under a playing video; `slipstream up` restarts it and the player
    re-fetches by itself: the video's time keeps moving on well past the crash."""
    page = browser.new_page(viewport=DESKTOP)  # type: ignore[arg-type]
    page.goto(system.gateway + "/")
    page.locator("[data-live-session$='.demo.sprint']").click()
    page.wait_for_function("document.querySelector('video')?.currentTime > 1", timeout=30_000)
    relay = next(p for p in children_of(system.proc.popen.pid)
                 if "services.relay" in Path(f"/proc/{p}/cmdline").read_text())
    os.kill(relay, signal.SIGKILL)
    at_crash = current_times(page)[0]
    wait_until(lambda: status(f"{system.relay}/readyz") == 200, 60, "relay restarted")
    page.wait_for_function(f"document.querySelector('video').currentTime > {at_crash + 8}",
                           timeout=60_000)
    page.close()


async def _switch(system: System, session: Session, to: str, reason: SwitchReason,
                  at: datetime) -> None:
    """Publish a channel switch of ``session``, as the relay does (as the relay user)."""
    nc = await nats.connect(system.nats_url, **login(system.data, "relay"))
    try:
        await nc.publish(subjects.channel_switched(session.key), encode(ChannelSwitch(
            channel=session.key, session=session.key, from_stream=None, to_stream=to,
            reason=reason, at=at)))
        await nc.flush()
    finally:
        await nc.drain()


def _channel_session(system: System, name: str, pool: ThreadPoolExecutor) -> Session:
    """A live session of its own (nothing else moves it) with a copy of a demo stream."""
    start = datetime.now(UTC).replace(microsecond=0)
    session = Session(key=f"2099.{name}.race", season=2099, round=1, event="Channel Grand Prix",
                      kind=SessionKind.RACE, name="Race", start=start,
                      end=start + timedelta(hours=2))
    pool.submit(asyncio.run, _go_live(system.nats_url, session, system.data)).result(timeout=30)
    pool.submit(asyncio.run, _copy_demo_stream(system.nats_url, session, "feed",
                                               system.data)).result(timeout=30)
    return session


def test_the_session_page_offers_its_channel_first_and_says_what_is_on_air(
        system: System, browser: Browser) -> None:
    """"Auto (best source)" heads the stream list and, once the relay has a stream on air,
    plays the session's channel URL (the relay's /c/...) by itself; the source on air and its
    switches, published on NATS, show on the page."""
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API owns this thread's event loop
        session = _channel_session(system, "channel", pool)
        page = browser.new_page(viewport=DESKTOP)  # type: ignore[arg-type]
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(f"{system.gateway}/#/session/{session.key}")
        auto = page.locator(f"[data-channel='{session.key}']")
        expect(auto).to_contain_text("Auto (best source)", timeout=30_000)
        expect(page.locator("section[aria-labelledby=streams-heading] li").first).to_have_attribute(
            "data-channel", session.key)
        # The relay runs a live session's channel by itself: once it says a stream is on air,
        # Auto is what the page plays.
        expect(page.locator("[data-player='~auto']")).to_have_count(1, timeout=30_000)
        expect(page.locator("[data-player='~auto']")).to_contain_text("Auto (best source)")
        wait_until(lambda: any(url.startswith(f"{system.relay}/c/{session.key}/")
                               and url.endswith("/master.m3u8") for url in requested),
                   15, "the player asked the relay for the channel")

        at = datetime.now(UTC).replace(microsecond=0)
        pool.submit(asyncio.run, _switch(system, session, "feed", SwitchReason.START,
                                         at)).result(timeout=30)
        on_air = auto.locator("[data-on-air=feed]")
        expect(on_air).to_contain_text("On air: ", timeout=10_000)
        expect(on_air).to_contain_text(" since ")
        pool.submit(asyncio.run, _switch(system, session, "feed", SwitchReason.STALLED,
                                         at + timedelta(seconds=2))).result(timeout=30)
        expect(on_air).to_contain_text("switched at", timeout=10_000)
        expect(on_air).to_contain_text("the previous source stalled")
        shot(page, "session-channel")
        page.close()

        fresh = browser.new_page(viewport=DESKTOP)  # type: ignore[arg-type]
        fresh.goto(f"{system.gateway}/#/session/{session.key}")
        expect(fresh.locator("[data-player='~auto']")).to_have_count(1, timeout=30_000)
        expect(fresh.locator("[data-player]")).to_have_count(1)
        fresh.close()


def test_the_auto_player_plays_the_channel_across_a_switch(system: System, browser: Browser) -> None:
    """Auto plays the session's channel through the relay (hls.js, time advancing); when the
    stream on air is removed, the relay puts the other one on air inside the same playlists and
    the player plays on: its time keeps advancing past the switch, no error shown, and the page
    says what is on air now."""
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API owns this thread's event loop
        session = _channel_session(system, "autoplay", pool)
        pool.submit(asyncio.run, _copy_demo_stream(system.nats_url, session, "spare",
                                                   system.data)).result(
            timeout=30)
        page = browser.new_page(viewport=DESKTOP)  # type: ignore[arg-type]
        console = Console(page)
        page.goto(f"{system.gateway}/#/session/{session.key}?view=~auto")
        video = "document.querySelector(\"[data-player='~auto'] video\")"
        try:
            page.wait_for_function(f"{video}?.currentTime > 2", timeout=30_000)

            def on_air() -> str | None:
                reply = httpx.get(f"{system.gateway}/api/sessions/{session.key}", timeout=5)
                return reply.json().get("on_air") if reply.status_code == 200 else None

            wait_until(lambda: on_air() in {"feed", "spare"}, 30, "a stream on air")
            before = on_air() or ""
            pool.submit(asyncio.run, _kv(system.nats_url, system.data, "delete",
                                         f"{session.key}.{before}")).result(timeout=30)
            after = "spare" if before == "feed" else "feed"
            wait_until(lambda: on_air() == after, 30, f"{after} on air")
            at_switch = page.evaluate(f"{video}.currentTime")
            page.wait_for_function(f"{video}.currentTime > {at_switch + 6}", timeout=40_000)
            assert page.evaluate(f"{video}.error") is None
            expect(page.locator(f"[data-channel='{session.key}']")).to_contain_text("switched")
            shot(page, "channel-after-switch")
        finally:
            page.close()
    assert [p for p in console.problems if "error" in p] == []
