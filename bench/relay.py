"""The relay's figures, each measured side by side with nginx in one run on this machine:

1. a cached 2 MB segment to 50 clients (wrk, keep-alive): relay vs nginx ``proxy_cache``;
2. uncached pass-through, every request a segment never asked for before: relay vs nginx
   ``proxy_pass`` without a cache;
3. a cached 16 KB media playlist, requests per second: relay vs nginx serving the very bytes
   the relay serves, as a file;
4. a cold segment asked for by 200 viewers at the same instant: time until the last viewer has
   all of it, relay vs nginx ``proxy_cache_lock``, and the requests the origin saw (relay: 1);
5. the relay's resident memory idle, with 1,000 and with 5,000 viewers holding a segment.

Every server is one process (nginx ``worker_processes 1``, one uvicorn relay). The origin is a
third, separate nginx serving files, so neither side is measured against a slow Python origin;
its segments under ``/live/c/`` (the cold test) are sent at 25 MB/s, as a remote origin would,
so waiting viewers are what is measured there. Each figure is repeated (``--runs``, alternating
relay and nginx) and reported as the median with min-max; every figure is also written to
``test-artifacts/bench.json`` (:mod:`bench.report`). The load generators (wrk, and a raw-socket
uvloop client for the cold and memory tests) share the two cores with the servers.

    .venv/bin/python bench/relay.py [--runs 3] [--seconds 8]
                                    (needs Debian's nginx and wrk: `make bench` installs them)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import m3u8
import nats
import uvloop

from bench.report import record
from shared import subjects, topology
from shared.codec import encode
from shared.natsserver import EmbeddedNats
from shared.relay_urls import Signer, load_secret
from shared.streams import Health, StreamRecord

SEGMENT_BYTES = 2 * 1024 * 1024
#: Segments of the pass-through playlist: more than any run asks for, so each is new.
PASS_SEGMENTS = 40_000
COLD_SEGMENTS = 200
VIEWERS = 200
COLD_RATE = "25m"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def spread(values: list[float], fmt: str = "{:.0f}") -> str:
    return f"{fmt.format(min(values))}-{fmt.format(max(values))} over {len(values)} runs"


# --- the origin and nginx ---------------------------------------------------------------------

def media_playlist(prefix: str, count: int, first: int = 0) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2",
             f"#EXT-X-MEDIA-SEQUENCE:{first}"]
    for n in range(first, first + count):
        lines += ["#EXTINF:2.000,", f"{prefix}{n}.ts?sig=0123456789abcdef"]
    return "\n".join(lines) + "\n"


def write_origin(root: Path, small_segments: int) -> None:
    live = root / "origin" / "live"
    for sub in ("p", "v", "c"):
        (live / sub).mkdir(parents=True)
    (root / "origin" / "seg.ts").write_bytes(os.urandom(SEGMENT_BYTES))
    (live / "master.m3u8").write_text(
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=8000000\np/index.m3u8\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=7000000\nv/index.m3u8\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=6000000\nc/index.m3u8\n")
    (live / "p" / "index.m3u8").write_text(media_playlist("s", small_segments, 500_000))
    (live / "v" / "index.m3u8").write_text(media_playlist("v", PASS_SEGMENTS))
    (live / "c" / "index.m3u8").write_text(media_playlist("c", COLD_SEGMENTS))


def start_nginx(root: Path, name: str, servers: str) -> subprocess.Popen[bytes]:
    conf = f"""
worker_processes 1; daemon off; pid {root}/{name}.pid; error_log {root}/{name}.err;
worker_rlimit_nofile 65536;
events {{ worker_connections 16384; }}
http {{
  types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;
  client_body_temp_path {root}/{name}-body; proxy_temp_path {root}/{name}-proxy;
  fastcgi_temp_path {root}/{name}-fcgi; uwsgi_temp_path {root}/{name}-uwsgi;
  scgi_temp_path {root}/{name}-scgi;
{servers}
}}"""
    (root / f"{name}.conf").write_text(conf)
    return subprocess.Popen(["nginx", "-c", str(root / f"{name}.conf"), "-p", str(root)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_http(url: str, within: float = 180) -> None:
    deadline = time.monotonic() + within
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            got = httpx.get(url, timeout=2)
            if got.status_code == 200:
                return
            last = f"HTTP {got.status_code}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready within {within} s: {last}")


# --- wrk --------------------------------------------------------------------------------------

def wrk(url: str, seconds: int, *, script: Path | None = None) -> tuple[float, float]:
    """Requests/s and MB/s of ``url`` with 50 keep-alive connections (one wrk thread)."""
    args = ["wrk", "-t1", "-c50", f"-d{seconds}s", "--timeout", "30s"]
    if script is not None:
        args += ["-s", str(script)]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"{url}: non-2xx answers\n{out}")
    errors = re.search(r"Socket errors:.*", out)
    if errors:
        print(f"   ({url.split('/')[2]}: wrk {errors[0]})")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    unit = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9}[transfer[2]]  # type: ignore[index]
    return rps, float(transfer[1]) * unit / 1e6  # type: ignore[index]


def paths_script(folder: Path, name: str, paths: list[str]) -> Path:
    """A wrk script asking for each of ``paths`` once, in order."""
    listing = folder / f"{name}.txt"
    listing.write_text("\n".join(paths) + "\n")
    script = folder / f"{name}.lua"
    script.write_text(f"""
local paths = {{}}
for line in io.lines("{listing}") do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i - 1) % #paths + 1])
end
""")
    return script


# --- raw-socket viewers -----------------------------------------------------------------------

def _request(path: str, port: int) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").encode()


async def _connect(port: int) -> socket.socket:
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    return sock


async def simultaneous(port: int, path: str, viewers: int) -> tuple[float, int]:
    """``viewers`` connections made first, then each asks for ``path`` at once; seconds until
    the last has read the whole answer, and how many got a 200 with every byte."""
    loop = asyncio.get_running_loop()
    socks = await asyncio.gather(*(_connect(port) for _ in range(viewers)))
    request = _request(path, port)
    done: list[float] = []
    complete = 0

    async def read(sock: socket.socket) -> None:
        nonlocal complete
        buffer = bytearray(1 << 20)
        view = memoryview(buffer)
        head = b""
        total = 0
        while True:
            n = await loop.sock_recv_into(sock, view)
            if n == 0:
                break
            if len(head) < 16:
                head += bytes(view[:16])
            total += n
        done.append(time.perf_counter())
        complete += head.startswith(b"HTTP/1.1 200") and total > SEGMENT_BYTES
        sock.close()

    started = time.perf_counter()
    for sock in socks:
        sock.send(request)  # a few dozen bytes: never blocks
    await asyncio.gather(*(read(s) for s in socks))
    return max(done) - started, complete


async def hold(port: int, path: str, count: int, pid: int) -> tuple[float, int]:
    """``count`` viewers ask for a segment and read only its first 16 KB; the server's RSS."""
    loop = asyncio.get_running_loop()
    socks: list[socket.socket] = []
    for start in range(0, count, 500):  # in batches: the listen backlog is finite
        socks += await asyncio.gather(*(_connect(port) for _ in range(min(500, count - start))))
    request = _request(path, port)
    for sock in socks:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.send(request)
    ok = 0
    for sock in socks:
        head = await loop.sock_recv(sock, 16384)
        ok += head.startswith(b"HTTP/1.1 200")
    await asyncio.sleep(2)
    peak = rss_mb(pid)
    for sock in socks:
        sock.close()
    await asyncio.sleep(1)
    return peak, ok


# --- the run ----------------------------------------------------------------------------------

async def put_record(url: str, origin: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await topology.apply(js)
    kv = await topology.streams_kv(js)
    record_ = StreamRecord(id="bench", session="2026.bench.race", source_id="bench",
                           upstream_url=f"{origin}/live/master.m3u8",
                           resolved_at=datetime.now(UTC), health=Health.OK)
    await kv.put(subjects.stream_key("2026.bench.race", "bench"), encode(record_))
    await nc.drain()


def origin_requests(log: Path, needle: str) -> int:
    time.sleep(0.3)
    return sum(needle in line for line in log.read_text().splitlines())


def alternate(runs: int, relay: Callable[[int], float], nginx: Callable[[int], float],
              baseline: Callable[[int], float] | None = None
              ) -> tuple[list[float], list[float]]:
    """Runs of each side in turn; a ``baseline`` relay's are printed and recorded too."""
    r: list[float] = []
    n: list[float] = []
    b: list[float] = []
    for i in range(runs):
        n.append(nginx(i))
        r.append(relay(i))
        if baseline is not None:
            b.append(baseline(i))
    if b:
        BASELINE.append(b)
    return r, n


#: The baseline relay's runs of the figure just measured (``--baseline``).
BASELINE: list[list[float]] = []


def report_baseline(name: str, unit: str, relay: list[float]) -> None:
    if not BASELINE:
        return
    b = BASELINE.pop()
    bm, rm = statistics.median(b), statistics.median(relay)
    print(f"   {'baseline relay':<24} {bm:>9.0f} {unit}  ({spread(b)}); this relay / baseline "
          f"= {rm / bm:.2f}")
    record(f"baseline: {name}", bm, unit, anchor_name="this relay", anchor_value=rm,
           spread=f"baseline {spread(b)}; this relay {spread(relay)}",
           note="--baseline: the relay of another checkout, same run, same dependencies")


def report(title: str, unit: str, relay: list[float], nginx: list[float], *, anchor: str,
           name: str, target: str, fmt: str = "{:.0f}", lower_is_better: bool = False) -> None:
    rm, nm = statistics.median(relay), statistics.median(nginx)
    ratio = rm / nm
    print(f"{title}")
    print(f"   {anchor:<24} {fmt.format(nm):>9} {unit}  ({spread(nginx, fmt)})")
    print(f"   {'slipstream relay':<24} {fmt.format(rm):>9} {unit}  ({spread(relay, fmt)})")
    better = "nginx / relay" if lower_is_better else "relay / nginx"
    shown = nm / rm if lower_is_better else ratio
    print(f"   {better} = {shown:.2f} (target: {target})", flush=True)
    record(name, rm, unit, anchor_name=anchor, anchor_value=nm,
           spread=f"relay {spread(relay, fmt)}; {anchor} {spread(nginx, fmt)}",
           note=f"median of {len(relay)} alternating runs; target {target}; "
                "other processes may share the 2 cores")


def main() -> int:  # noqa: PLR0912, PLR0915 - one linear script
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--baseline", metavar="DIR",
                        help="also measure the relay of another checkout (a worktree of an older "
                             "commit) on the cached segment and playlist, in the same runs")
    parser.add_argument("--only", default="segment,pass,playlist,cold,memory",
                        help="which figures (comma-separated: segment,pass,playlist,cold,memory)")
    args = parser.parse_args()
    only = set(args.only.split(","))
    if not (shutil.which("nginx") and shutil.which("wrk")):
        print("needs nginx and wrk (Debian packages): run `make bench`", file=sys.stderr)
        return 1
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    tmp = Path(tempfile.mkdtemp(prefix="slipstream-bench-relay-"))
    tmp.chmod(0o755)  # nginx workers started as root drop to an unprivileged user
    # ~16 KB as relayed (each relay URL is longer than the upstream name it replaces)
    write_origin(tmp, small_segments=185)
    origin_port, cache_port, pass_port, file_port, relay_port = (free_port() for _ in range(5))
    origin = f"http://127.0.0.1:{origin_port}"
    (tmp / "files").mkdir()
    (tmp / "cache").mkdir()
    (tmp / "cache").chmod(0o777)
    log = tmp / "origin.log"
    origin_nginx = start_nginx(tmp, "origin", f"""
  log_format path '$request_uri';
  server {{
    listen 127.0.0.1:{origin_port} backlog=4096; root {tmp}/origin;
    access_log {log} path;
    location ~ ^/live/c/.*\\.ts$ {{ limit_rate {COLD_RATE}; rewrite ^ /seg.ts break; }}
    location ~ \\.ts$ {{ rewrite ^ /seg.ts break; }}
  }}""")
    front = start_nginx(tmp, "front", f"""
  proxy_cache_path {tmp}/cache levels=1 keys_zone=c:50m max_size=4g inactive=1h;
  server {{
    listen 127.0.0.1:{cache_port} backlog=4096;
    location / {{ proxy_pass {origin}; proxy_cache c; proxy_cache_valid 200 10m;
                 proxy_cache_lock on; proxy_cache_lock_timeout 30s; }}
  }}
  server {{ listen 127.0.0.1:{pass_port} backlog=4096; location / {{ proxy_pass {origin}; }} }}
  server {{ listen 127.0.0.1:{file_port} backlog=4096; root {tmp}/files; }}""")
    nats_server = EmbeddedNats(tmp / "nats")
    nats_url = nats_server.start()
    relay = None
    others: list[subprocess.Popen[bytes]] = []
    try:
        wait_http(f"{origin}/live/master.m3u8")
        asyncio.run(put_record(nats_url, origin))
        env = {**os.environ, "SLIPSTREAM_NATS_URL": nats_url, "SLIPSTREAM_DATA_DIR": str(tmp),
               "SLIPSTREAM_RELAY_PORT": str(relay_port), "SLIPSTREAM_LOG_LEVEL": "warning",
               "SLIPSTREAM_EGRESS_ALLOW": origin.removeprefix("http://")}
        relay = subprocess.Popen([sys.executable, "-m", "services.relay"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{relay_port}"
        wait_http(f"{base}/readyz")
        signer = Signer(load_secret(None, tmp))
        master_url = signer.master_url(base, "2026.bench.race", "bench", 3600)
        variants = [p.uri for p in m3u8.loads(httpx.get(master_url).text).playlists]
        small_text = httpx.get(base + variants[0]).text
        small = [s.uri for s in m3u8.loads(small_text).segments]
        passing = [s.uri for s in m3u8.loads(httpx.get(base + variants[1], timeout=30).text).segments]
        cold = [s.uri for s in m3u8.loads(httpx.get(base + variants[2]).text).segments]
        (tmp / "files" / "index.m3u8").write_text(small_text)
        relay_seg = base + small[0]
        nginx_seg = f"http://127.0.0.1:{cache_port}/live/p/s500000.ts?sig=0123456789abcdef"
        for url in (relay_seg, nginx_seg, relay_seg, nginx_seg):  # second time: cached
            got = httpx.get(url, timeout=30)
            if got.status_code != 200 or len(got.content) != SEGMENT_BYTES:
                raise RuntimeError(f"{url}: HTTP {got.status_code}, {len(got.content)} bytes")
        seconds = args.seconds
        base_seg = base_playlist = None
        if args.baseline:
            base_port = free_port()
            baseline = subprocess.Popen([sys.executable, "-m", "services.relay"], cwd=args.baseline,
                                        env={**env, "SLIPSTREAM_RELAY_PORT": str(base_port)},
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            others.append(baseline)
            other = f"http://127.0.0.1:{base_port}"
            wait_http(f"{other}/readyz")
            first = m3u8.loads(httpx.get(signer.master_url(other, "2026.bench.race", "bench",
                                                           3600)).text).playlists[0].uri
            base_playlist = other + first
            base_seg = other + m3u8.loads(httpx.get(base_playlist).text).segments[0].uri
            for _ in range(2):
                httpx.get(base_seg, timeout=30).raise_for_status()
        print(f"Every server one process; {args.runs} alternating runs each, median (min-max); "
              "the load generators share the 2 cores (so may other processes on this machine)")

        if "memory" in only:
            idle = rss_mb(relay.pid)
            print(f"5. relay resident memory (before the other figures: one segment cached): "
                  f"{idle:.0f} MB idle")
            record("relay resident memory idle", idle, "MB")
            for count in (1000, 5000):
                peak, ok = uvloop.run(hold(relay_port, small[0], count, relay.pid))
                print(f"   {peak:.0f} MB with {count:,} viewers holding a 2 MB segment "
                      f"({ok} answered 200){'  (target: under 200 MB)' if count == 5000 else ''}",
                      flush=True)
                record(f"relay resident memory, {count} viewers", peak, "MB",
                       note=f"{ok} of {count} answered 200; each reads 16 KB of a cached 2 MB "
                            "segment and holds; target under 200 MB at 5000")

        if "segment" in only:
            r, n = alternate(args.runs, lambda _: wrk(relay_seg, seconds)[0],
                             lambda _: wrk(nginx_seg, seconds)[0],
                             None if base_seg is None else lambda _: wrk(base_seg, seconds)[0])
            report(f"1. cached 2 MB segment, 50 clients, {seconds} s (wrk)", "req/s", r, n,
                   anchor="nginx proxy_cache", name="relay cached 2 MB segment, 50 clients",
                   target=">= 1.0x")
            report_baseline("relay cached 2 MB segment, 50 clients", "req/s", r)

        if "playlist" in only:
            playlist_url = base + variants[0]
            r, n = alternate(args.runs, lambda _: wrk(playlist_url, seconds)[0],
                             lambda _: wrk(f"http://127.0.0.1:{file_port}/index.m3u8", seconds)[0],
                             None if base_playlist is None
                             else lambda _: wrk(base_playlist, seconds)[0])
            report(f"3. cached media playlist ({len(small_text.encode()) / 1024:.1f} KB as relayed, "
                   f"{len(small)} segments), 50 clients, {seconds} s", "req/s", r, n,
                   anchor="nginx serving the file", name="relay cached 16 KB media playlist",
                   target=">= 0.3x")
            report_baseline("relay cached 16 KB media playlist", "req/s", r)

        if "cold" in only:
            def cold_run(port: int, path: str, needle: str, counts: list[int]) -> float:
                before = origin_requests(log, needle)
                took, complete = uvloop.run(simultaneous(port, path, VIEWERS))
                if complete != VIEWERS:
                    raise RuntimeError(f"{path}: only {complete} of {VIEWERS} viewers got it all")
                counts.append(origin_requests(log, needle) - before)
                return took

            relay_counts: list[int] = []
            nginx_counts: list[int] = []
            r, n = alternate(
                max(args.runs, 5),
                lambda i: cold_run(relay_port, cold[2 * i], f"/live/c/c{2 * i}.ts", relay_counts),
                lambda i: cold_run(cache_port, f"/live/c/c{2 * i + 1}.ts?sig=0123456789abcdef",
                                   f"/live/c/c{2 * i + 1}.ts", nginx_counts))
            report(f"4. a cold 2 MB segment to {VIEWERS} viewers at once (origin sends at "
                   f"{COLD_RATE}B/s): time until the last has it all", "s", r, n,
                   anchor="nginx proxy_cache_lock", name=f"relay cold segment to {VIEWERS} viewers",
                   target="<= 1.0x nginx's time", fmt="{:.3f}", lower_is_better=True)
            print(f"   origin requests per cold segment: relay {relay_counts}, nginx {nginx_counts}")
            record("relay origin requests per cold segment", max(relay_counts), "requests",
                   anchor_name="nginx proxy_cache_lock", anchor_value=max(nginx_counts),
                   spread=f"relay {relay_counts}, nginx {nginx_counts}",
                   note=f"{VIEWERS} simultaneous viewers per segment; target: 1")

        if "pass" in only:
            per_run = PASS_SEGMENTS // args.runs
            scripts_r = [paths_script(tmp, f"pass-relay-{i}", passing[i * per_run:(i + 1) * per_run])
                         for i in range(args.runs)]
            scripts_n = [paths_script(tmp, f"pass-nginx-{i}",
                                      [f"/live/v/v{k}.ts?sig=0123456789abcdef"
                                       for k in range(i * per_run, (i + 1) * per_run)])
                         for i in range(args.runs)]
            r, n = alternate(args.runs, lambda i: wrk(base, seconds, script=scripts_r[i])[0],
                             lambda i: wrk(f"http://127.0.0.1:{pass_port}", seconds,
                                           script=scripts_n[i])[0])
            report(f"2. uncached pass-through, a new 2 MB segment every request, 50 clients, "
                   f"{seconds} s", "req/s", r, n, anchor="nginx proxy_pass",
                   name="relay uncached pass-through", target=">= 0.75x")

    finally:
        for proc in (front, origin_nginx):
            proc.send_signal(signal.SIGQUIT)
        for proc in [relay, *others]:
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
        for proc in (front, origin_nginx):
            proc.wait(30)
        nats_server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
