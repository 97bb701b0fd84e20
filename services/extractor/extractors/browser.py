"""The ``browser`` extractor: Chromium, driven with Playwright, for pages that build the playlist
URL in JavaScript. It loads the page and captures the first playlist request from the network.

One Chromium per process, started by us (Debian's ``chromium``; Playwright's own download cannot
work offline) in its own process group and reached over CDP, so a stuck browser is killed with
its whole group, never left as a zombie. All its traffic goes through the egress proxy (loopback
included: ``--proxy-bypass-list=<-loopback>``), so the policy holds for every request the page
makes. Service workers are blocked; each extraction has its own context and a wall-clock deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any, Final

from playwright.async_api import Browser, Playwright, Request, async_playwright
from playwright.async_api import Error as PlaywrightError

from services.extractor.registry import PLAYLIST_URL, Context, ExtractionError, Found
from shared import logs
from shared.natsserver import die_with_parent

log = logs.get(__name__)

START_TIMEOUT: Final = 20.0
CLOSE_TIMEOUT: Final = 5.0


class Chromium:
    """The process's Chromium: started on first use, killed with its process group."""

    def __init__(self) -> None:
        self.process: asyncio.subprocess.Process | None = None
        self.profile: Path | None = None
        self.playwright: Playwright | None = None
        self.browser: Browser | None = None
        self.key: tuple[str, str] | None = None
        self._lock = asyncio.Lock()

    async def get(self, executable: str, proxy: str) -> Browser:
        async with self._lock:
            alive = self.process is not None and self.process.returncode is None
            if self.browser is not None and alive and self.key == (executable, proxy):
                return self.browser
            await self._stop()
            return await self._start(executable, proxy)

    async def _start(self, executable: str, proxy: str) -> Browser:
        if not shutil.which(executable):
            raise ExtractionError(f"Chromium not found at {executable} (install Debian's chromium)")
        self.profile = Path(tempfile.mkdtemp(prefix="slipstream-chromium-"))
        args = [executable, "--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
                "--mute-audio", "--disable-extensions", "--disable-default-apps",
                "--disable-domain-reliability", "--disable-client-side-phishing-detection",
                "--disable-component-extensions-with-background-pages", "--no-default-browser-check",
                "--disable-features=OptimizationHints,MediaRouter,Translate,DialMediaRouteProvider,"
                "AutofillServerCommunication,CertificateTransparencyComponentUpdater",
                "--metrics-recording-only", "--password-store=basic", "--use-mock-keychain",
                "--safebrowsing-disable-auto-update", "--disable-crash-reporter",
                "--disable-breakpad", f"--user-data-dir={self.profile}",
                "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                f"--proxy-server={proxy}", "--proxy-bypass-list=<-loopback>", "about:blank"]
        self.process = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
            preexec_fn=die_with_parent)
        port_file = self.profile / "DevToolsActivePort"
        try:
            async with asyncio.timeout(START_TIMEOUT):
                while not port_file.exists() or len(port_file.read_text().split()) < 2:
                    if self.process.returncode is not None:
                        raise ExtractionError(f"Chromium exited with {self.process.returncode}")
                    await asyncio.sleep(0.02)
            port, path = port_file.read_text().split()[:2]
            self.playwright = await async_playwright().start()
            self.browser = await self.playwright.chromium.connect_over_cdp(
                f"ws://127.0.0.1:{port}{path}", timeout=START_TIMEOUT * 1000)
        except (TimeoutError, PlaywrightError, OSError) as exc:
            await self._stop()
            raise ExtractionError(f"Chromium did not start: {exc}") from exc
        self.key = (executable, proxy)
        log.info("chromium started", pid=self.process.pid)
        return self.browser

    def kill(self) -> None:
        """Kill Chromium and everything it started (its process group)."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    async def _stop(self) -> None:
        if self.browser is not None:
            with contextlib.suppress(PlaywrightError, TimeoutError):
                await asyncio.wait_for(self.browser.close(), CLOSE_TIMEOUT)
        if self.playwright is not None:
            with contextlib.suppress(PlaywrightError, TimeoutError):
                await asyncio.wait_for(self.playwright.stop(), CLOSE_TIMEOUT)
        self.kill()
        if self.process is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), CLOSE_TIMEOUT)
        if self.profile is not None:
            shutil.rmtree(self.profile, ignore_errors=True)
        self.browser = self.playwright = self.process = self.profile = None

    async def shutdown(self) -> None:
        """The service stops: kill Chromium's process group at once (nothing of it is worth
        waiting for), then release what is left. A run cancelled mid-start may still hold
        the lock for a moment; the kill does not wait for it."""
        self.kill()
        async with asyncio.timeout(CLOSE_TIMEOUT), self._lock:
            await self._stop()


CHROMIUM: Final = Chromium()


class BrowserExtractor:
    """Real Chromium: the most expensive extractor, tried last."""

    name = "browser"

    async def extract(self, url: str, ctx: Context) -> list[Found]:
        if not ctx.proxy:
            raise ExtractionError("the browser extractor needs the egress proxy")
        browser = await CHROMIUM.get(ctx.chromium, ctx.proxy)
        extra = {k: v for k, v in ctx.headers.items() if k.lower() != "cookie"}
        context = await browser.new_context(user_agent=ctx.user_agent, service_workers="block",
                                            extra_http_headers=extra)
        try:
            return [await self._capture(context, url, ctx)]
        finally:
            try:
                await asyncio.wait_for(context.close(), CLOSE_TIMEOUT)
            except (TimeoutError, PlaywrightError):
                log.warning("browser context did not close; killing Chromium")
                CHROMIUM.kill()

    async def _capture(self, context: Any, url: str, ctx: Context) -> Found:
        if ctx.cookies:
            await context.add_cookies([{"name": k, "value": v, "url": url}
                                       for k, v in ctx.cookies.items()])
        captured: asyncio.Future[Request] = asyncio.get_running_loop().create_future()

        def on_request(request: Request) -> None:
            if PLAYLIST_URL.search(request.url) and not captured.done():
                captured.set_result(request)

        context.on("request", on_request)
        page = await context.new_page()
        try:
            response = await page.goto(url, wait_until="domcontentloaded",
                                       timeout=ctx.deadline * 1000)
        except PlaywrightError as exc:
            if not captured.done():
                raise ExtractionError(f"page did not load: {str(exc).splitlines()[0]}") from exc
            response = None
        if response is not None and response.status in (401, 403, 451) and not captured.done():
            raise ExtractionError(f"HTTP {response.status}", refused=True)
        try:
            request = await asyncio.wait_for(asyncio.shield(captured), ctx.deadline)
        except TimeoutError as exc:
            raise ExtractionError(f"the page requested no playlist within {ctx.deadline:.0f} s") from exc
        headers = await request.all_headers()
        keep = {"Referer": headers["referer"]} if "referer" in headers else {}
        cookies = {c["name"]: c["value"] for c in await context.cookies(request.url)}
        title = ""
        with contextlib.suppress(PlaywrightError):
            title = await page.title()
        return Found(url=request.url, headers=keep, cookies=cookies, title=title)
