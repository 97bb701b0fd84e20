"""Time from an ``upcoming`` event to the stream in the KV: per extractor (first record) and per
gallery pattern (first *healthy* record, ``extractor = "auto"``).

Starts an embedded nats-server, the demo origin (gallery on) and real extractor processes, then,
per run, publishes ``upcoming`` for a fresh session, watches the ``streams`` KV, and ends the
session (its jobs stop). Prints the median and spread over the runs.

* extractors: one process with one source pinned to each extractor, resolved concurrently;
* gallery: one page at a time (its own process with that page as its only source, so no page
  waits behind another's Chromium), ``extractor = "auto"``: the chain by cost, so a page the
  ``http`` extractor cannot read pays for the cheaper extractors' tries before the browser's.

Every run is cold: each source's URL carries the session's event (``?run={event}``), so the
extractor's result cache (Redis or memory, keyed by the page URL) never answers a run from an
earlier one. Each process is warm (imports done, Chromium started): its run 0 is a warm-up.

    .venv/bin/python bench/extract_latency.py [--runs 5] [--only extractors|gallery]
        [--pattern ID]...
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import nats

from bench.report import record
from services.demo.app import create_app
from services.demo.gallery import PATTERNS
from shared import subjects, topology
from shared.codec import decode, encode
from shared.http import server
from shared.natsserver import EmbeddedNats
from shared.sessions import Ended, Session, SessionKind, Upcoming
from shared.streams import Health, StreamRecord

#: Source id -> (page path, extractor); resolved for race sessions.
SOURCES = {"bench-http": ("/pages/plain", "http"), "bench-ytdlp": ("/pages/plain", "ytdlp"),
           "bench-streamlink": ("/live/master.m3u8", "streamlink"),
           "bench-browser": ("/pages/scripted", "browser")}
#: Source id -> gallery pattern; resolved (extractor "auto") for sprint sessions.
GALLERY = {f"bench-g-{p.id}": p for p in PATTERNS}
RUN_TIMEOUT = {"extractors": 60.0, "gallery": 120.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_demo() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    srv = server(create_app(gallery=True), log_level="warning")
    threading.Thread(target=lambda: asyncio.run(srv.serve([sock])), daemon=True).start()
    while not srv.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


def config(demo: str, table: str, wanted: list[str]) -> str:
    """The sources of one table (``wanted``): pinned to each extractor (race sessions) or
    gallery pages with ``auto`` (sprint sessions), each URL unique per session so that no run
    is served from the cache of another."""
    port = demo.rsplit(":", 1)[1]
    if table == "extractors":
        text = "".join(f'[[sources]]\nid = "{sid}"\nurl = "{demo}{SOURCES[sid][0]}?run={{event}}"\n'
                       f'extractor = "{SOURCES[sid][1]}"\nkinds = ["race"]\n\n' for sid in wanted)
    else:
        text = "".join(f'[[sources]]\nid = "{sid}"\nurl = "{demo}{GALLERY[sid].path}?run={{event}}"\n'
                       'extractor = "auto"\nkinds = ["sprint"]\n\n' for sid in wanted)
    # The gallery's second site is the same server under "localhost".
    return text + f'[egress]\nallow = ["127.0.0.1:{port}", "localhost:{port}"]\n'


async def one_run(url: str, table: str, wanted: list[str], run: int) -> dict[str, tuple[float, str]]:
    """Seconds from ``upcoming`` to each source's stream: its first record (extractors) or its
    first healthy record (gallery), and the extractor that found it."""
    kind = SessionKind.RACE if table == "extractors" else SessionKind.SPRINT
    nc = await nats.connect(url)
    js = nc.jetstream()
    now = datetime.now(UTC).replace(microsecond=0)
    event_name = f"bench-{table[0]}{run}-{now:%H%M%S}-{os.urandom(3).hex()}"
    session = Session(key=f"{now.year}.{event_name}.{kind.value}", season=now.year, round=1,
                      event="Bench", kind=kind, name=kind.value.title(),
                      start=now + timedelta(minutes=10), end=now + timedelta(hours=2))
    kv = await topology.streams_kv(js)
    sessions = await topology.sessions_kv(js)
    watcher = await kv.watch(subjects.stream_keys(session.key))
    upcoming = Upcoming(session=session, at=now)
    await sessions.put(session.key, encode(upcoming))
    started = time.monotonic()
    await js.publish(subjects.session_event(session.key, "upcoming"), encode(upcoming))
    seen: dict[str, tuple[float, str]] = {}
    try:
        async with asyncio.timeout(RUN_TIMEOUT[table]):
            async for entry in watcher:
                if entry is None or entry.value is None:
                    continue
                source = entry.key.rsplit(".", 1)[1]
                record = decode(entry.value, StreamRecord)
                if table == "gallery" and record.health is not Health.OK:
                    continue
                seen.setdefault(source, (time.monotonic() - started, record.extractor))
                if len(seen) == len(wanted):
                    break
    except TimeoutError:
        pass
    await watcher.stop()
    # End the session: its keep-fresh jobs stop, so runs do not pile up load on each other.
    ended = Ended(session=session, at=datetime.now(UTC))
    await sessions.put(session.key, encode(ended))
    await js.publish(subjects.session_event(session.key, "ended"), encode(ended))
    await nc.drain()
    return seen


def report(title: str, rows: dict[str, str], results: dict[str, list[tuple[float, str]]],
           runs: int, figure: str) -> None:
    """One line per source: median, min and max seconds, runs that made it, and which
    extractor found the stream (``found by``: more than one name if runs differed); each
    median also goes to test-artifacts/bench.json as ``figure`` with the source's label."""
    print(title)
    width = max(len(label) for label in rows.values()) + 1
    print(f"{'':<{width}} {'median':>8} {'min':>8} {'max':>8}  ok   found by")
    for sid, label in rows.items():
        times = [t for t, _ in results[sid]]
        found_by = ",".join(sorted({e for _, e in results[sid]}))
        if times:
            print(f"{label:<{width}} {statistics.median(times):>7.3f}s {min(times):>7.3f}s "
                  f"{max(times):>7.3f}s  {len(times)}/{runs}  {found_by}")
            record(figure.format(label=label), round(statistics.median(times), 3), "s",
                   spread=f"{min(times):.3f}-{max(times):.3f}",
                   note=f"cold, median of {len(times)}/{runs} runs; found by {found_by}")
        else:
            print(f"{label:<{width}} {'-':>8} {'-':>8} {'-':>8}  0/{runs}")


class Extractor:
    """One extractor process configured with ``wanted`` sources of ``table``."""

    def __init__(self, tmp: Path, nats_url: str, demo: str, table: str, wanted: list[str]) -> None:
        path = tmp / f"bench-{table}-{wanted[0]}.toml"
        path.write_text(config(demo, table, wanted))
        self.port = free_port()
        env = {**os.environ, "SLIPSTREAM_NATS_URL": nats_url, "SLIPSTREAM_DATA_DIR": str(tmp),
               "SLIPSTREAM_EXTRACTOR_PORT": str(self.port), "SLIPSTREAM_CONFIG": str(path),
               "SLIPSTREAM_LOG_LEVEL": "warning"}
        self.log = tmp / f"extractor-{table}-{wanted[0]}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "services.extractor"], env=env,
                                         stdout=out, stderr=subprocess.STDOUT)

    def __enter__(self) -> Extractor:
        deadline = time.monotonic() + 120
        said = "no answer"
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                reply = httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1)
            except httpx.HTTPError as exc:
                said = str(exc)
            else:
                if reply.status_code == 200:
                    return self
                said = reply.text
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"the extractor was not ready ({said}); its log: {self.log}")

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)


def measure(tmp: Path, nats_url: str, demo: str, table: str, wanted: list[str], *,
            runs: int) -> dict[str, list[tuple[float, str]]]:
    """``runs`` cold runs (after one warm-up) of one extractor process with ``wanted``."""
    results: dict[str, list[tuple[float, str]]] = {sid: [] for sid in wanted}
    with Extractor(tmp, nats_url, demo, table, wanted):
        for run in range(runs + 1):
            seen = asyncio.run(one_run(nats_url, table, wanted, run))
            if run == 0:
                continue  # warm-up: first imports (yt-dlp, streamlink) and Chromium's start
            for sid in wanted:
                if sid in seen:
                    results[sid].append(seen[sid])
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--only", choices=["extractors", "gallery"], default=None,
                   help="measure one table only (default: both)")
    p.add_argument("--pattern", action="append", choices=[p.id for p in PATTERNS],
                   help="gallery pages to measure (default: all)")
    args = p.parse_args()
    tables = [args.only] if args.only else ["extractors", "gallery"]
    tmp = Path(tempfile.mkdtemp(prefix="slipstream-bench-"))
    nats_server = EmbeddedNats(tmp / "nats")
    url = nats_server.start()
    demo = serve_demo()
    try:
        if "extractors" in tables:
            results = measure(tmp, url, demo, "extractors", list(SOURCES), runs=args.runs)
            report(f"upcoming event -> first stream in the KV, {args.runs} cold runs after "
                   "one warm-up, the four concurrently",
                   {sid: ext for sid, (_, ext) in SOURCES.items()}, results, args.runs,
                   "extraction {label}: upcoming to first stream")
            print()
        if "gallery" in tables:
            pages = [sid for sid, pat in GALLERY.items()
                     if not args.pattern or pat.id in args.pattern]
            results = {}
            for sid in pages:
                results |= measure(tmp, url, demo, "gallery", [sid], runs=args.runs)
            report(f"upcoming event -> healthy stream (extractor auto), per gallery page, one "
                   f"page at a time, {args.runs} cold runs after one warm-up",
                   {sid: GALLERY[sid].id for sid in pages},
                   results, args.runs, "gallery {label}: upcoming to healthy stream")
            print()
    finally:
        nats_server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
