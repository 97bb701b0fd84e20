"""The ``browser`` extractor: Chromium, driven with Playwright, for pages that build the playlist
URL in JavaScript, hide it in cross-site iframes or load it only when a viewer clicks play.

It behaves like a viewer: the page loads with the source's User-Agent, autoplay allowed and
sound muted; when no playlist shows up within a couple of seconds it clicks what a person would
(a play overlay or button in any frame, else the middle of the largest video or iframe), a few
times with backoff, closes the popups and tabs that ads open and dismisses dialogs, and keeps
watching for late iframes and late requests until its deadline.

Playlists are recognised by what they are, from every frame (cross-site iframes included): a
playlist ``Content-Type``, or a body starting ``#EXTM3U`` (read only for small text-like answers
to scripts and media elements: real playlists are also served as ``mono.css`` in ``text/css``),
and, as a fast hint, a request URL naming ``.m3u8``. Each candidate is the playlist *request*
with the identity the player sent (User-Agent, Referer, Origin, Authorization, custom ``X-``
headers, cookies). Master playlists come before media playlists, first seen first otherwise;
after the first one it watches a short grace for more, then returns (``resolve`` probes them).

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
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from playwright.async_api import (
    Browser,
    BrowserContext,
    Dialog,
    ElementHandle,
    Page,
    Playwright,
    Request,
    Response,
    async_playwright,
)
from playwright.async_api import Error as PlaywrightError

from services.extractor.registry import (
    MAX_CANDIDATES,
    PLAYLIST_URL,
    Context,
    ExtractionError,
    Found,
    is_playlist_body,
    is_playlist_type,
)
from shared import logs
from shared.identity import is_identity_header
from shared.natsserver import die_with_parent

log = logs.get(__name__)

START_TIMEOUT: Final = 20.0
CLOSE_TIMEOUT: Final = 5.0
#: The share of the deadline spent watching the page; the rest is left for probing candidates.
WATCH_SHARE: Final = 0.8
#: Seconds without a playlist before the first click, growth of the wait between click rounds.
FIRST_CLICK: Final = 2.0
BACKOFF: Final = 1.5
CLICK_ROUNDS: Final = 6
#: The wait before clicking again when a click only opened an ad (a popup, another site).
AGAIN: Final = 0.5
#: Elements clicked in one round (play buttons of different frames), and its time limit.
CLICKS_PER_ROUND: Final = 3
ROUND_TIMEOUT: Final = 4.0
#: After the first playlist: how long to keep watching for more (a master after an ad, variants).
GRACE: Final = 1.5
#: Bodies read to recognise a playlist: at most this size, within this time.
MAX_BODY: Final = 1 << 20
BODY_TIMEOUT: Final = 3.0
#: How long the last body reads may finish after the watch, and one Playwright call may take.
SETTLE: Final = 1.0
CALL_TIMEOUT: Final = 2.0
#: Distinct playlist URLs remembered per page (the best ``MAX_CANDIDATES`` are returned), and
#: answers read per page to find them.
MAX_SEEN: Final = 4 * MAX_CANDIDATES
MAX_READS: Final = 300
#: Resource types whose answers may be playlists (hls.js and friends load them with XHR/fetch,
#: native players as media); never images, fonts, style sheets, scripts or documents.
BODY_TYPES: Final = frozenset({"xhr", "fetch", "media", "other"})
#: Content types a playlist hides behind besides its own: any ``text/*`` (``mono.css`` in
#: ``text/css``, ``.txt``, ``.php`` as ``text/html``), a generic binary type, or none.
_TEXTLIKE_TYPES: Final = frozenset({"", "application/octet-stream", "binary/octet-stream"})

# Ranks of a candidate: what its answer showed it to be (lower is tried first).
MASTER, MEDIA, REQUESTED, NOT_PLAYLIST = range(4)
_KIND: Final = {MASTER: "master", MEDIA: "media", REQUESTED: "requested", NOT_PLAYLIST: "named"}


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
                "--mute-audio", "--autoplay-policy=no-user-gesture-required",
                "--disable-extensions", "--disable-default-apps",
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

#: The play control of a frame, as a viewer would spot it: players' own overlay classes first,
#: then anything whose label, title, text, class or id says "play". Returns ``[element, score]``.
_FIND_PLAY: Final = """() => {
  const STRONG = '.vjs-big-play-button, .jw-icon-playback, .jw-display-icon-container, '
    + '.plyr__control--overlaid, .ytp-large-play-button, .fp-play, .mejs__overlay-play, '
    + '.clappr-play, [data-plyr="play"]';
  const words = (s) => String(s || '').replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase()
    .split(/[^a-z0-9\u25b6\u25ba]+/);
  const says = (list) => list.some((w) => w === 'play' || w === 'bigplay' || w === 'playbtn'
    || w === 'playbutton' || w === '\u25b6' || w === '\u25ba');
  const shown = (el) => {
    const r = el.getBoundingClientRect();
    if (r.width < 4 || r.height < 4 || r.bottom <= 0 || r.right <= 0
        || r.top >= innerHeight || r.left >= innerWidth) return false;
    return el.checkVisibility ? el.checkVisibility({opacityProperty: true,
                                                    visibilityProperty: true}) : true;
  };
  let best = null, top = 0, area = 0;
  const query = STRONG + ', button, [role=button], [onclick], [aria-label], [title], '
    + '[class*=play i], [id*=play i]';
  for (const el of document.querySelectorAll(query)) {
    const label = [el.getAttribute('aria-label'), el.getAttribute('title')];
    const text = (el.textContent || '').trim();
    if (text.length <= 30) label.push(text);
    const named = [typeof el.className === 'string' ? el.className : el.getAttribute('class'),
                   el.id];
    if (words(label.join(' ')).includes('pause')) continue;
    let score = 0;
    if (el.matches(STRONG)) score = 10;
    else if (says(words(label.join(' ')))) score = 8;
    else if (says(words(named.join(' ')))) score = 6;
    if (!score || score < top || !shown(el)) continue;
    const r = el.getBoundingClientRect();
    if (score > top || r.width * r.height > area) {
      best = el; top = score; area = r.width * r.height;
    }
  }
  return [best, top];
}"""

#: The largest visible video or iframe of a frame: ``[element, visible area]``.
_FIND_MEDIA: Final = """() => {
  let best = null, most = 0;
  for (const el of document.querySelectorAll('video, iframe')) {
    const r = el.getBoundingClientRect();
    const w = Math.min(r.right, innerWidth) - Math.max(r.left, 0);
    const h = Math.min(r.bottom, innerHeight) - Math.max(r.top, 0);
    if (w > 0 && h > 0 && w * h > most && (!el.checkVisibility || el.checkVisibility())) {
      best = el; most = w * h;
    }
  }
  return [best, most];
}"""


def header_name(name: str) -> str:
    """A header name as browsers print it (``x-requested-with`` -> ``X-Requested-With``)."""
    return "-".join(part.capitalize() for part in name.split("-"))


def identity(sent: Mapping[str, str], user_agent: str,
             extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The headers of a request that make up the identity its stream needs: User-Agent (always,
    ``user_agent`` when the request shows none), Referer, Origin, Authorization, custom ``X-``
    headers, and those the source itself set (``extra``)."""
    own = {k.lower() for k in extra or {}} - {"cookie"}
    keep = {header_name(k): v for k, v in sent.items()
            if (is_identity_header(k) or k.lower() in own) and not k.startswith(":")}
    keep.setdefault("User-Agent", user_agent)
    return keep


def sent_cookies(header: str) -> dict[str, str]:
    """The cookies of a ``Cookie`` request header."""
    out = {}
    for pair in header.split(";"):
        name, eq, value = pair.strip().partition("=")
        if eq and name:
            out[name] = value
    return out


def textlike(content_type: str) -> bool:
    """Whether an answer of this type may be a playlist in disguise (and its body is read)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind.startswith("text/") or kind in _TEXTLIKE_TYPES


def playlist_rank(body: bytes) -> int | None:
    """``MASTER`` or ``MEDIA`` for an HLS playlist body, ``None`` for anything else."""
    if not is_playlist_body(body):
        return None
    return MASTER if b"#EXT-X-STREAM-INF" in body[:MAX_BODY] else MEDIA


def _root(request: Request) -> Request:
    """The request the player made, before any redirect (its URL is the one to ask again:
    a redirect target is often a short-lived token)."""
    seen = 0
    while request.redirected_from is not None and seen < 20:
        request, seen = request.redirected_from, seen + 1
    return request


@dataclass
class Seen:
    """A playlist request seen on the page: when (``order``: its request, or its answer's
    arrival, whichever the page showed first), what its answer showed (``rank``) and in which
    frame."""

    request: Request
    order: int
    rank: int
    where: str


class Visit:
    """One page load in its own browser context: what the page requested, and the viewer's
    clicks. Every task it starts is kept and cancelled when it ends."""

    def __init__(self, context: BrowserContext, ctx: Context) -> None:
        self.context = context
        self.ctx = ctx
        self.page: Page | None = None
        self.seen: dict[str, Seen] = {}
        self.first_at: float | None = None
        #: Set when the first playlist shows up or a popup opens (the watch has news).
        self.wake = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()
        self.popups = 0
        self.clicks = 0
        self.reads = 0
        #: Counts requests and answers as they happen, so the order of candidates is the
        #: page's own, not the order in which their bodies happened to be read.
        self.ticks = 0

    # Events (Playwright calls these synchronously; anything slow becomes a kept task).

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _tick(self) -> int:
        self.ticks += 1
        return self.ticks

    def on_request(self, request: Request) -> None:
        if PLAYLIST_URL.search(request.url):
            self._note(_root(request), REQUESTED, answered=False, order=self._tick())

    def on_response(self, response: Response) -> None:
        request = response.request
        root = _root(request)
        hinted = url_hint(request.url) or url_hint(root.url)
        content_type = response.headers.get("content-type", "")
        typed = is_playlist_type(content_type)
        if (hinted or typed or (request.resource_type in BODY_TYPES and textlike(content_type)
                                and 200 <= response.status < 300)) and self.reads < MAX_READS:
            self.reads += 1
            self._spawn(self._classify(response, root, hinted=hinted, typed=typed,
                                       order=self._tick()))

    def on_page(self, page: Page) -> None:
        if self.page is not None and page != self.page:
            self.popups += 1
            self.wake.set()
            self._spawn(self._close(page))

    def on_dialog(self, dialog: Dialog) -> None:
        self._spawn(self._dismiss(dialog))

    async def _close(self, page: Page) -> None:
        with contextlib.suppress(PlaywrightError, TimeoutError):
            await asyncio.wait_for(page.close(), CALL_TIMEOUT)

    @staticmethod
    async def _dismiss(dialog: Dialog) -> None:
        with contextlib.suppress(PlaywrightError, TimeoutError):
            await asyncio.wait_for(dialog.dismiss(), CALL_TIMEOUT)

    async def _classify(self, response: Response, root: Request, *, hinted: bool,
                        typed: bool, order: int) -> None:
        rank: int | None = None
        if 200 <= response.status < 300:
            body = await self._body(response)
            if body is not None:
                rank = playlist_rank(body)
                if rank is None and (hinted or typed):
                    rank = NOT_PLAYLIST
            elif typed:
                rank = MEDIA  # its type says playlist; which kind is unknown
        elif response.status >= 400 and (hinted or typed):
            rank = NOT_PLAYLIST
        if rank is not None:
            self._note(root, rank, answered=True, order=order)

    @staticmethod
    async def _body(response: Response) -> bytes | None:
        """The body, if it is small: the declared length first, else the size received."""
        length = response.headers.get("content-length", "")
        if length and (not length.isdigit() or int(length) > MAX_BODY):
            return None
        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                if not length and (await response.request.sizes())["responseBodySize"] > MAX_BODY:
                    return None
                return await response.body()
        except (PlaywrightError, TimeoutError):
            return None  # gone with its frame, endless, or not kept by Chromium

    def _note(self, request: Request, rank: int, *, answered: bool, order: int) -> None:
        known = self.seen.get(request.url)
        if known is None:
            if len(self.seen) >= MAX_SEEN:
                return
            known = self.seen[request.url] = Seen(request, order, rank, self._where(request))
        elif answered:
            # An answer is what tells; of several answers for one URL the best one counts.
            known.rank = rank if known.rank == REQUESTED else min(known.rank, rank)
        if known.rank < NOT_PLAYLIST and self.first_at is None:
            self.first_at = time.monotonic()
            self.wake.set()

    def _where(self, request: Request) -> str:
        try:
            frame = request.frame
        except PlaywrightError:  # a worker's request has no frame
            return "worker"
        if frame.page != self.page:
            return "popup"
        return "iframe" if frame.parent_frame is not None else "page"

    def playlists(self) -> int:
        return sum(1 for s in self.seen.values() if s.rank < NOT_PLAYLIST)

    # The visit.

    async def run(self, url: str) -> list[Found]:
        end = time.monotonic() + self.ctx.deadline * WATCH_SHARE
        context = self.context
        if self.ctx.cookies:
            await context.add_cookies([{"name": k, "value": v, "url": url}
                                       for k, v in self.ctx.cookies.items()])
        context.on("request", self.on_request)
        context.on("response", self.on_response)
        context.on("dialog", self.on_dialog)
        page = self.page = await context.new_page()
        context.on("page", self.on_page)  # after ours exists: any other page is a popup
        try:
            try:
                response = await page.goto(url, wait_until="domcontentloaded",
                                           timeout=max(end - time.monotonic(), 0.1) * 1000)
            except PlaywrightError as exc:
                if not self.seen:
                    raise ExtractionError(
                        f"page did not load: {str(exc).splitlines()[0]}") from exc
                response = None
            if response is not None and response.status in (401, 403, 451) and not self.seen:
                raise ExtractionError(f"HTTP {response.status}", refused=True)
            await self._watch(page, end)
            if self.tasks:  # answers still being read may turn a request into a master
                await asyncio.wait(set(self.tasks), timeout=SETTLE)
            if not self.seen:
                raise ExtractionError(
                    f"the page requested no playlist within {self.ctx.deadline * WATCH_SHARE:.0f} s"
                    f" ({self.clicks} clicks)")
            return await self._found(page)
        finally:
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _watch(self, page: Page, end: float) -> None:
        """Wait for playlists, clicking like a viewer while none shows; after the first, a short
        grace for more. Returns at the deadline whatever happened."""
        landed = page.url
        gap = FIRST_CLICK
        next_click = time.monotonic() + gap
        rounds = popups = 0
        while (now := time.monotonic()) < end:
            if self.first_at is not None:
                ready = min(self.first_at + GRACE, end)
                if now >= ready or self.playlists() >= MAX_CANDIDATES:
                    if self.playlists():
                        return
                    # Every request named like a playlist answered something else: look on.
                    self.first_at = None
                    continue
                await asyncio.sleep(ready - now)
                continue
            if rounds and self.popups > popups:
                # The last click went to an ad's popup: a viewer closes it and clicks again.
                popups = self.popups
                next_click = min(next_click, now + AGAIN)
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), min(next_click, end) - now)
            if self.wake.is_set() or time.monotonic() < next_click:
                continue
            if rounds < CLICK_ROUNDS:
                popups = self.popups
                await self._click_round(page, rounds, end)
                rounds += 1
                gap *= BACKOFF
                next_click = time.monotonic() + (AGAIN if await self._stay(page, landed, end)
                                                 else gap)
            else:
                next_click = end

    async def _stay(self, page: Page, landed: str, end: float) -> bool:
        """A click that took the page to another site (an ad link over the player): go back.
        Whether it did."""
        if urlsplit(page.url).netloc == urlsplit(landed).netloc:
            return False
        log.debug("a click left the page; going back")
        with contextlib.suppress(PlaywrightError):
            await page.go_back(wait_until="domcontentloaded",
                               timeout=max(min(CALL_TIMEOUT, end - time.monotonic()), 0.1) * 1000)
        return True

    async def _click_round(self, page: Page, round_no: int, end: float) -> None:
        """Click what a viewer would: play controls (one per frame, best first), else the middle
        of the largest video or iframe; odd rounds try the middle first."""
        try:
            async with asyncio.timeout(max(min(ROUND_TIMEOUT, end - time.monotonic()), 0.1)):
                plays: list[tuple[float, ElementHandle]] = []
                media: list[tuple[float, ElementHandle]] = []
                for frame in list(page.frames):
                    if frame.is_detached():
                        continue
                    for script, into in ((_FIND_PLAY, plays), (_FIND_MEDIA, media)):
                        with contextlib.suppress(PlaywrightError):
                            found = await _element(frame, script)
                            if found is not None:
                                into.append(found)
                plays.sort(key=lambda p: -p[0])
                media.sort(key=lambda m: -m[0])
                order = [plays[:CLICKS_PER_ROUND], media[:1]]
                for group in order if round_no % 2 == 0 else order[::-1]:
                    if group and await self._click(page, [e for _, e in group]):
                        return
        except TimeoutError:
            log.debug("click round timed out", round=round_no)

    async def _click(self, page: Page, elements: list[ElementHandle]) -> bool:
        """Click the middle of each element with the mouse, as a person would (whatever lies on
        top gets the click: that is how overlays and ad layers behave for viewers too)."""
        clicked = False
        for element in elements:
            try:
                with contextlib.suppress(PlaywrightError):
                    await element.scroll_into_view_if_needed(timeout=CALL_TIMEOUT * 500)
                box = await element.bounding_box()
                viewport = page.viewport_size or {"width": 1280, "height": 720}
                if box is None or box["width"] < 1 or box["height"] < 1:
                    continue
                x = min(max(box["x"] + box["width"] / 2, 1), viewport["width"] - 1)
                y = min(max(box["y"] + box["height"] / 2, 1), viewport["height"] - 1)
                await page.mouse.click(x, y)
                clicked = True
                self.clicks += 1
            except PlaywrightError as exc:
                log.debug("click failed", error=str(exc).splitlines()[0])
        return clicked

    async def _found(self, page: Page) -> list[Found]:
        title = ""
        with contextlib.suppress(PlaywrightError, TimeoutError):
            title = await asyncio.wait_for(page.title(), CALL_TIMEOUT)
        best = sorted(self.seen.values(), key=lambda s: (s.rank, s.order))[:MAX_CANDIDATES]
        return list(await asyncio.gather(*(self._one(s, title) for s in best)))

    async def _one(self, seen: Seen, title: str) -> Found:
        request = seen.request
        try:
            sent = await asyncio.wait_for(request.all_headers(), CALL_TIMEOUT)
        except (PlaywrightError, TimeoutError):
            sent = request.headers  # what Chromium planned to send (no cookies)
        cookies = sent_cookies(sent.get("cookie", ""))
        with contextlib.suppress(PlaywrightError, TimeoutError):
            jar = await asyncio.wait_for(self.context.cookies(request.url), CALL_TIMEOUT)
            cookies.update({c["name"]: c["value"] for c in jar if "name" in c and "value" in c})
        headers = identity(sent, self.ctx.user_agent, self.ctx.headers)
        return Found(url=request.url, headers=headers, cookies=cookies, title=title,
                     via=f"network {seen.where}: {_KIND[seen.rank]}")


async def _element(frame: Any, script: str) -> tuple[float, ElementHandle] | None:
    """Run a finder script in a frame: its element and score, or None."""
    handle = await asyncio.wait_for(frame.evaluate_handle(script), CALL_TIMEOUT)
    try:
        element = (await handle.get_property("0")).as_element()
        score = float(await (await handle.get_property("1")).json_value())
    finally:
        with contextlib.suppress(PlaywrightError):
            await handle.dispose()
    return (score, element) if element is not None and score > 0 else None


def url_hint(url: str) -> bool:
    """Whether a request URL names a playlist (a hint, checked against the answer)."""
    return bool(PLAYLIST_URL.search(url))


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
            started = time.monotonic()
            visit = Visit(context, ctx)
            found = await visit.run(url)
            log.debug("browser candidates", count=len(found), clicks=visit.clicks,
                      popups=visit.popups, seconds=round(time.monotonic() - started, 2))
            return found
        finally:
            try:
                await asyncio.wait_for(context.close(), CLOSE_TIMEOUT)
            except (TimeoutError, PlaywrightError):
                log.warning("browser context did not close; killing Chromium")
                CHROMIUM.kill()
