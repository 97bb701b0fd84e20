"""The gateway's WebSocket feed, measured on this machine in one run:

1. latency from a KV put to its arrival at every connected client (p50, p99, max) with 1,000
   and 5,000 clients, for the gateway and, side by side, for a bare fan-out server (nats-py KV
   watch plus ``websockets.broadcast``, no validation, no views, no per-client queues) as a
   floor for what Python can do here;
2. the gateway's resident memory per connection.

Clients run in two separate processes on the same 2 cores as the servers, so the figures
include their cost too: they are an upper bound on the server's own latency.

    .venv/bin/python bench/ws_feed.py [--clients 1000,5000] [--changes 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import nats
import websockets
from websockets.asyncio.server import broadcast, serve

from shared import subjects, topology
from shared.codec import encode
from shared.natsserver import EmbeddedNats
from shared.sessions import Live, Session, SessionKind
from shared.streams import Health, StreamRecord

WORKERS = 2
MARK = b'"title":"bench '
NOW = datetime.now(UTC).replace(microsecond=0)
SESSION = Session(key="2026.bench.race", season=2026, round=1, event="Bench GP",
                  kind=SessionKind.RACE, name="Race", start=NOW)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def raise_nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


# --- client worker: holds connections, timestamps arrivals ------------------------------------

async def client_worker(url: str, count: int, changes: int) -> None:
    """Open ``count`` connections, say ``ready``, then report each change's arrival latency."""
    raise_nofile()
    latencies: list[int] = []
    stamps: list[int] = []
    done = asyncio.Event()
    seen: dict[int, int] = {}

    async def one() -> None:
        async with websockets.connect(url, compression=None, max_size=2**20,
                                      open_timeout=60, ping_interval=None) as ws:
            await ws.recv()  # the gateway's snapshot (the bare server sends a hello)
            ready.append(1)
            if len(ready) == count:
                print("ready", flush=True)
            async for message in ws:
                data = message.encode() if isinstance(message, str) else message
                at = data.find(MARK)
                if at < 0:
                    continue
                stamp = int(data[at + len(MARK):data.index(b'"', at + len(MARK))])
                latencies.append(time.monotonic_ns() - stamp)
                stamps.append(stamp)
                seen[stamp] = seen.get(stamp, 0) + 1
                if len(latencies) >= count * changes:
                    done.set()
                if len(seen) >= changes and all(v >= count for v in seen.values()):
                    done.set()

    ready: list[int] = []
    tasks = []
    for _ in range(count):  # connect gradually: a thundering herd is not what is measured here
        tasks.append(asyncio.create_task(one()))
        await asyncio.sleep(0.001)
    try:
        await asyncio.wait_for(done.wait(), 120)
    except TimeoutError:
        pass  # report what arrived: the driver prints the share received
    finally:
        print(json.dumps([stamps, latencies]), flush=True)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# --- the bare fan-out server used as a floor -----------------------------------------------------

async def bare_server(port: int, nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    kv = await topology.streams_kv(nc.jetstream())
    async def handler(ws: websockets.asyncio.server.ServerConnection) -> None:
        await ws.send('{"type":"hello"}')
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", port, compression=None) as server:
        print("ready", flush=True)
        watcher = await kv.watchall(include_history=False)
        async for entry in watcher:
            if entry is None or entry.value is None:
                continue
            record = json.loads(entry.value)  # what a server would do at the least: decode, encode
            broadcast(server.connections,
                      json.dumps({"type": "stream", "stream": record}, separators=(",", ":")))


# --- the driver --------------------------------------------------------------------------------

def start_clients(url: str, count: int, changes: int) -> list[subprocess.Popen[str]]:
    per = count // WORKERS
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", url, str(per), str(changes)],
                              stdout=subprocess.PIPE, text=True) for _ in range(WORKERS)]
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"client worker failed to connect: {line!r}")
    return procs


async def put_changes(nats_url: str, changes: int, interval: float) -> None:
    nc = await nats.connect(nats_url)
    kv = await topology.streams_kv(nc.jetstream())
    for i in range(changes):
        record = StreamRecord(id=f"s{i % 8}", session=SESSION.key, source_id="bench",
                              title=f"bench {time.monotonic_ns()}",
                              upstream_url="https://cdn.example.test/live.m3u8",
                              resolved_at=datetime.now(UTC), health=Health.OK)
        await kv.put(subjects.stream_key(SESSION.key, record.id), encode(record))
        await asyncio.sleep(interval)
    await nc.drain()


def percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6


def measure(url: str, nats_url: str, count: int, changes: int, server_pid: int) -> dict[str, float]:
    before = rss_kb(server_pid)
    procs = start_clients(url, count, changes)
    time.sleep(1.0)
    after = rss_kb(server_pid)
    asyncio.run(put_changes(nats_url, changes, 0.15))
    latencies: list[int] = []
    per_change: dict[int, int] = {}
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        stamps, lats = json.loads(out.strip().splitlines()[-1])
        latencies += lats
        for stamp, lat in zip(stamps, lats, strict=True):
            per_change[stamp] = max(per_change.get(stamp, 0), lat)
    if os.environ.get("BENCH_DEBUG"):
        print("  worst per change, ms:", [round(v / 1e6) for _, v in sorted(per_change.items())])
    expected = count // WORKERS * WORKERS * changes
    return {"p50": percentile(latencies, 0.50), "p99": percentile(latencies, 0.99),
            "max": max(latencies) / 1e6, "received": len(latencies) / expected,
            "kb_per_conn": (after - before) / count}


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1000,5000")
    parser.add_argument("--changes", type=int, default=40)
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    raise_nofile()
    tmp = Path(tempfile.mkdtemp(prefix="slipstream-bench-ws-"))
    nats_server = EmbeddedNats(tmp / "nats")
    nats_url = nats_server.start()

    async def setup() -> None:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        await topology.apply(js)
        await (await topology.sessions_kv(js)).put(SESSION.key, encode(Live(session=SESSION, at=NOW)))
        await nc.drain()

    asyncio.run(setup())
    port, bare_port = free_port(), free_port()
    env = {**os.environ, "SLIPSTREAM_NATS_URL": nats_url, "SLIPSTREAM_DATA_DIR": str(tmp),
           "SLIPSTREAM_GATEWAY_PORT": str(port), "SLIPSTREAM_LOG_LEVEL": "warning"}
    gateway = subprocess.Popen([sys.executable, "-m", "services.gateway"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bare = subprocess.Popen([sys.executable, __file__, "--bare", str(bare_port), nats_url],
                            stdout=subprocess.PIPE, text=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz")
        assert bare.stdout is not None
        assert bare.stdout.readline().strip() == "ready"
        print(f"{'clients':>8} {'server':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
              f"{'received':>9} {'KB/conn':>8}")
        results = {}
        for count in counts:
            for name, url, pid in (("gateway", f"ws://127.0.0.1:{port}/ws", gateway.pid),
                                   ("bare", f"ws://127.0.0.1:{bare_port}/", bare.pid)):
                r = measure(url, nats_url, count, args.changes, pid)
                results[(count, name)] = r
                print(f"{count:>8} {name:>8} {r['p50']:>8.1f} {r['p99']:>8.1f} {r['max']:>8.1f} "
                      f"{r['received']:>9.1%} {r['kb_per_conn']:>8.1f}", flush=True)
                time.sleep(2)  # let the previous clients' connections close
        for count in counts:
            g, b = results[(count, "gateway")], results[(count, "bare")]
            print(f"{count} clients: gateway p99 / bare p99 = {g['p99'] / b['p99']:.2f}; "
                  f"gateway {g['kb_per_conn']:.1f} KB per connection "
                  f"(targets: p99 under 50 ms at 5,000; under 50 KB)")
    finally:
        for proc in (gateway, bare):
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
        nats_server.stop()
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        asyncio.run(client_worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    elif len(sys.argv) > 1 and sys.argv[1] == "--bare":
        asyncio.run(bare_server(int(sys.argv[2]), sys.argv[3]))
    else:
        sys.exit(main())
