"""The relay's figures, measured side by side in one run on this machine:

1. throughput of a cached 2 MB segment to 50 concurrent clients (wrk), relay against nginx with
   ``proxy_cache`` in front of the same origin, both as one process, as a ratio;
2. upstream requests per segment when 100 viewers ask for the same new segments at once;
3. resident memory of the relay with 1,000 viewers connected and reading.

    .venv/bin/python bench/relay.py        (needs Debian's nginx and wrk: `make bench` installs them)
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import m3u8
import nats
from litestar import Litestar, Response, get

from shared import subjects, topology
from shared.codec import encode
from shared.http import server
from shared.natsserver import EmbeddedNats
from shared.relay_urls import Signer, load_secret
from shared.streams import Health, StreamRecord

SEGMENT = os.urandom(2 * 1024 * 1024)
SEGMENTS = 60
HITS: Counter[str] = Counter()


@get("/live/master.m3u8", sync_to_thread=False)
def master() -> Response[str]:
    return Response("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=8000000\nv/index.m3u8\n",
                    media_type="application/vnd.apple.mpegurl")


@get("/live/v/index.m3u8", sync_to_thread=False)
def media() -> Response[str]:
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:2", "#EXT-X-MEDIA-SEQUENCE:0"]
    for n in range(SEGMENTS):
        lines += ["#EXTINF:2.0,", f"seg{n}.ts"]
    return Response("\n".join(lines) + "\n", media_type="application/vnd.apple.mpegurl")


@get("/live/v/{name:str}", sync_to_thread=False)
def segment(name: str) -> Response[bytes]:
    HITS[name] += 1
    return Response(SEGMENT, media_type="video/mp2t")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(app: Any) -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    srv = server(app, log_level="warning")
    threading.Thread(target=lambda: asyncio.run(srv.serve([sock])), daemon=True).start()
    while not srv.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


def wrk(url: str, seconds: int = 8) -> tuple[float, float]:
    out = subprocess.run(["wrk", "-t1", "-c50", f"-d{seconds}s", url], capture_output=True,
                         text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    unit = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9}[transfer[2]]  # type: ignore[index]
    return rps, float(transfer[1]) * unit / 1e6  # type: ignore[index]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def hold_viewers(url: str, count: int, pid: int) -> tuple[float, int]:
    """``count`` viewers each reading a segment slowly; the relay's peak RSS while they read."""
    parts = httpx.URL(url)
    request = (f"GET {parts.raw_path.decode()} HTTP/1.1\r\nHost: {parts.host}\r\n"
               "Connection: close\r\n\r\n").encode()
    conns = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection(parts.host, parts.port, limit=65536)
        writer.write(request)
        conns.append((reader, writer))
    ok = 0
    for reader, _ in conns:
        head = await reader.read(16384)
        ok += head.startswith(b"HTTP/1.1 200")
    await asyncio.sleep(2)
    peak = rss_mb(pid)
    for _, writer in conns:
        writer.close()
    return peak, ok


async def put_record(url: str, origin: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await topology.apply(js)
    kv = await topology.streams_kv(js)
    record = StreamRecord(id="bench", session="2026.bench.race", source_id="bench",
                          upstream_url=f"{origin}/live/master.m3u8", resolved_at=datetime.now(UTC),
                          health=Health.OK)
    await kv.put(subjects.stream_key("2026.bench.race", "bench"), encode(record))
    await nc.drain()


def main() -> int:  # noqa: PLR0915 - one linear script
    if not (shutil.which("nginx") and shutil.which("wrk")):
        print("needs nginx and wrk (Debian packages): run `make bench`", file=sys.stderr)
        return 1
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    tmp = Path(tempfile.mkdtemp(prefix="slipstream-bench-relay-"))
    origin = serve(Litestar([master, media, segment], openapi_config=None, logging_config=None))
    nats_server = EmbeddedNats(tmp / "nats")
    nats_url = nats_server.start()
    asyncio.run(put_record(nats_url, origin))
    relay_port, nginx_port = free_port(), free_port()
    env = {**os.environ, "SLIPSTREAM_NATS_URL": nats_url, "SLIPSTREAM_DATA_DIR": str(tmp),
           "SLIPSTREAM_RELAY_PORT": str(relay_port), "SLIPSTREAM_LOG_LEVEL": "warning",
           "SLIPSTREAM_EGRESS_ALLOW": origin.removeprefix("http://")}
    relay = subprocess.Popen([sys.executable, "-m", "services.relay"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (tmp / "cache").mkdir()
    # nginx workers drop to an unprivileged user when started as root: let them use the cache.
    tmp.chmod(0o755)
    (tmp / "cache").chmod(0o777)
    (tmp / "nginx.conf").write_text(f"""
worker_processes 1; daemon off; pid {tmp}/nginx.pid; error_log {tmp}/nginx.err;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  proxy_cache_path {tmp}/cache levels=1 keys_zone=c:10m max_size=1g;
  server {{
    listen 127.0.0.1:{nginx_port};
    location / {{ proxy_pass {origin}; proxy_cache c; proxy_cache_valid 200 10m;
                 proxy_cache_lock on; }}
  }}
}}""")
    nginx = subprocess.Popen(["nginx", "-c", str(tmp / "nginx.conf"), "-p", str(tmp)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{relay_port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        signer = Signer(load_secret(None, tmp))
        master_url = signer.master_url(base, "2026.bench.race", "bench", 3600)
        variant = m3u8.loads(httpx.get(master_url).text).playlists[0].uri
        segs = [s.uri for s in m3u8.loads(httpx.get(base + variant).text).segments]
        relay_seg = base + segs[0]
        nginx_seg = f"http://127.0.0.1:{nginx_port}/live/v/seg0.ts"
        for url in (relay_seg, nginx_seg):
            got = httpx.get(url, timeout=10)
            if len(got.content) != len(SEGMENT):
                raise RuntimeError(f"{url}: HTTP {got.status_code}, {len(got.content)} bytes")
        print("1. cached 2 MB segment, 50 concurrent clients, 8 s each (wrk, one server process)")
        nginx_rps, nginx_mbs = wrk(nginx_seg)
        relay_rps, relay_mbs = wrk(relay_seg)
        print(f"   nginx proxy_cache  {nginx_rps:8.1f} req/s  {nginx_mbs:8.1f} MB/s")
        print(f"   slipstream relay   {relay_rps:8.1f} req/s  {relay_mbs:8.1f} MB/s   "
              f"ratio {relay_rps / nginx_rps:.2f}")

        async def hundred() -> tuple[int, int]:
            fresh = segs[10:15]
            HITS.clear()
            async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=500)) as c:
                got = await asyncio.gather(*(c.get(base + u) for u in fresh for _ in range(100)))
            assert all(r.status_code == 200 for r in got)
            return sum(HITS.values()), len(fresh)

        hits, count = asyncio.run(hundred())
        print(f"2. 100 viewers x {count} new segments: {hits} upstream requests, "
              f"{hits / count:.2f} per segment")
        before = rss_mb(relay.pid)
        peak, ok = asyncio.run(hold_viewers(relay_seg, 1000, relay.pid))
        print(f"3. relay resident memory: {before:.0f} MB idle, {peak:.0f} MB with 1,000 viewers "
              f"reading a segment ({ok} answered)")
    finally:
        nginx.send_signal(signal.SIGQUIT)
        relay.send_signal(signal.SIGTERM)
        relay.wait(30)
        nginx.wait(30)
        nats_server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
