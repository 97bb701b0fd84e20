"""Time from an ``upcoming`` event to the stream in the KV: per extractor (first record) and per
gallery pattern (first *healthy* record, ``extractor = "auto"``).

Starts an embedded nats-server, the demo origin (gallery on) and one real extractor process
configured with one source pinned to each extractor and one ``auto`` source per gallery page,
then, per run, publishes ``upcoming`` for a fresh session, watches the ``streams`` KV, and ends
the session (its jobs stop). Prints the median and spread over the runs; the sources of one
table are resolved concurrently, as they would be in production.

Every run is cold: each source's URL carries the session's event (``?run={event}``), so the
extractor's result cache (Redis or memory, keyed by the page URL) never answers a run from an
earlier one. The process itself is warm (imports done, Chromium started): run 0 is a warm-up.

    .venv/bin/python bench/extract_latency.py [--runs 5] [--only extractors|gallery]
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


def config(demo: str) -> str:
    """Sources pinned to each extractor (race) and one per gallery page (sprint), each URL
    unique per session so that no run is served from the cache of another."""
    port = demo.rsplit(":", 1)[1]
    text = "".join(f'[[sources]]\nid = "{sid}"\nurl = "{demo}{path}?run={{event}}"\n'
                   f'extractor = "{ext}"\nkinds = ["race"]\n\n'
                   for sid, (path, ext) in SOURCES.items())
    text += "".join(f'[[sources]]\nid = "{sid}"\nurl = "{demo}{p.path}?run={{event}}"\n'
                    'extractor = "auto"\nkinds = ["sprint"]\n\n' for sid, p in GALLERY.items())
    # The gallery's second site is the same server under "localhost".
    return text + f'[egress]\nallow = ["127.0.0.1:{port}", "localhost:{port}"]\n'


async def one_run(url: str, table: str, run: int) -> dict[str, float]:
    """Seconds from ``upcoming`` to each source's stream: its first record (extractors) or its
    first healthy record (gallery)."""
    wanted = SOURCES if table == "extractors" else GALLERY
    kind = SessionKind.RACE if table == "extractors" else SessionKind.SPRINT
    nc = await nats.connect(url)
    js = nc.jetstream()
    now = datetime.now(UTC).replace(microsecond=0)
    event_name = f"bench-{table[0]}{run}-{now:%H%M%S}"
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
    seen: dict[str, float] = {}
    try:
        async with asyncio.timeout(RUN_TIMEOUT[table]):
            async for entry in watcher:
                if entry is None or entry.value is None:
                    continue
                source = entry.key.rsplit(".", 1)[1]
                if table == "gallery" and decode(entry.value, StreamRecord).health is not Health.OK:
                    continue
                seen.setdefault(source, time.monotonic() - started)
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


def report(title: str, rows: dict[str, str], results: dict[str, list[float]], runs: int) -> None:
    print(title)
    width = max(len(label) for label in rows.values()) + 1
    print(f"{'':<{width}} {'median':>8} {'min':>8} {'max':>8}  ok")
    for sid, label in rows.items():
        times = results[sid]
        if times:
            print(f"{label:<{width}} {statistics.median(times):>7.3f}s {min(times):>7.3f}s "
                  f"{max(times):>7.3f}s  {len(times)}/{runs}")
        else:
            print(f"{label:<{width}} {'-':>8} {'-':>8} {'-':>8}  0/{runs}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--only", choices=["extractors", "gallery"], default=None,
                   help="measure one table only (default: both)")
    args = p.parse_args()
    tables = [args.only] if args.only else ["extractors", "gallery"]
    tmp = Path(tempfile.mkdtemp(prefix="slipstream-bench-"))
    nats_server = EmbeddedNats(tmp / "nats")
    url = nats_server.start()
    demo = serve_demo()
    path = tmp / "bench.toml"
    path.write_text(config(demo))
    port = free_port()
    env = {**os.environ, "SLIPSTREAM_NATS_URL": url, "SLIPSTREAM_DATA_DIR": str(tmp),
           "SLIPSTREAM_EXTRACTOR_PORT": str(port), "SLIPSTREAM_CONFIG": str(path),
           "SLIPSTREAM_LOG_LEVEL": "warning"}
    proc = subprocess.Popen([sys.executable, "-m", "services.extractor"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        for table in tables:
            wanted = SOURCES if table == "extractors" else GALLERY
            results: dict[str, list[float]] = {sid: [] for sid in wanted}
            for run in range(args.runs + 1):
                seen = asyncio.run(one_run(url, table, run))
                if run == 0:
                    continue  # warm-up: first imports (yt-dlp, streamlink) and Chromium's start
                for sid in wanted:
                    if sid in seen:
                        results[sid].append(seen[sid])
            if table == "extractors":
                report(f"upcoming event -> first stream in the KV, {args.runs} cold runs after "
                       "one warm-up", {sid: ext for sid, (_, ext) in SOURCES.items()}, results,
                       args.runs)
            else:
                report(f"upcoming event -> healthy stream (extractor auto), per gallery page, "
                       f"{args.runs} cold runs after one warm-up",
                       {sid: f"{pat.id} ({pat.extractor})" for sid, pat in GALLERY.items()},
                       results, args.runs)
            print()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        nats_server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
