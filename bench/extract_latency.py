"""Time from an ``upcoming`` event to the first stream record in the KV, per extractor.

Starts an embedded nats-server, the demo origin and one real extractor process configured with
one source pinned to each extractor, then publishes ``upcoming`` for a fresh session per run and
watches the ``streams`` KV. Prints the median and spread over the runs (all four sources are
resolved concurrently, as they would be in production).

    .venv/bin/python bench/extract_latency.py [--runs 5]
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
from shared import subjects, topology
from shared.codec import encode
from shared.http import server
from shared.natsserver import EmbeddedNats
from shared.sessions import Session, SessionKind, Upcoming

SOURCES = {"bench-http": ("/pages/plain", "http"), "bench-ytdlp": ("/pages/plain", "ytdlp"),
           "bench-streamlink": ("/live/master.m3u8", "streamlink"),
           "bench-browser": ("/pages/scripted", "browser")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_demo() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    srv = server(create_app(), log_level="warning")
    threading.Thread(target=lambda: asyncio.run(srv.serve([sock])), daemon=True).start()
    while not srv.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


async def one_run(url: str, run: int) -> dict[str, float]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    now = datetime.now(UTC).replace(microsecond=0)
    session = Session(key=f"{now.year}.bench-{run}.race", season=now.year, round=1,
                      event="Bench", kind=SessionKind.RACE, name="Race",
                      start=now + timedelta(minutes=10), end=now + timedelta(hours=2))
    event = Upcoming(session=session, at=now)
    kv = await topology.streams_kv(js)
    watcher = await kv.watch(subjects.stream_keys(session.key))
    await (await topology.sessions_kv(js)).put(session.key, encode(event))
    started = time.monotonic()
    await js.publish(subjects.session_event(session.key, "upcoming"), encode(event))
    seen: dict[str, float] = {}
    try:
        async with asyncio.timeout(60):
            async for entry in watcher:
                if entry is None or entry.value is None:
                    continue
                source = entry.key.rsplit(".", 1)[1]
                seen.setdefault(source, time.monotonic() - started)
                if len(seen) == len(SOURCES):
                    break
    except TimeoutError:
        pass
    await watcher.stop()
    await nc.drain()
    return seen


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="slipstream-bench-"))
    nats_server = EmbeddedNats(tmp / "nats")
    url = nats_server.start()
    demo = serve_demo()
    config = tmp / "bench.toml"
    config.write_text("".join(
        f'[[sources]]\nid = "{sid}"\nurl = "{demo}{path}"\nextractor = "{ext}"\n\n'
        for sid, (path, ext) in SOURCES.items()) + f'[egress]\nallow = ["{demo[7:]}"]\n')
    port = free_port()
    env = {**os.environ, "SLIPSTREAM_NATS_URL": url, "SLIPSTREAM_DATA_DIR": str(tmp),
           "SLIPSTREAM_EXTRACTOR_PORT": str(port), "SLIPSTREAM_CONFIG": str(config),
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
        results: dict[str, list[float]] = {sid: [] for sid in SOURCES}
        for run in range(args.runs + 1):
            seen = asyncio.run(one_run(url, run))
            if run == 0:
                continue  # warm-up: first imports (yt-dlp, streamlink) and Chromium's start
            for sid in SOURCES:
                if sid in seen:
                    results[sid].append(seen[sid])
        print(f"upcoming event -> first stream in the KV, {args.runs} runs after one warm-up")
        print(f"{'extractor':<11} {'median':>8} {'min':>8} {'max':>8}  ok")
        for sid, (_, ext) in SOURCES.items():
            times = results[sid]
            if times:
                print(f"{ext:<11} {statistics.median(times):>7.3f}s {min(times):>7.3f}s "
                      f"{max(times):>7.3f}s  {len(times)}/{args.runs}")
            else:
                print(f"{ext:<11} {'-':>8} {'-':>8} {'-':>8}  0/{args.runs}")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        nats_server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
