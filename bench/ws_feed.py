"""The gateway's WebSocket feed, measured on this machine in one run:

1. latency from a KV put to its arrival at every connected client (p50, p99, max) with 1,000
   and 5,000 clients, for the gateway and, side by side, for a bare fan-out server (nats-py KV
   watch plus ``websockets.broadcast``, no validation, no views, no per-client queues) as a
   floor for what Python can do here;
2. the gateway's resident memory per connection.

Clients are lean, so that the figure measures the server: one process per core, each a uvloop
event loop holding its share of the connections as raw sockets (an ``asyncio.Protocol`` that
does the handshake and reads unmasked server frames itself, no WebSocket library). They still
share the 2 cores with the server: the CPU seconds each side used are printed beside the figures.
Every figure is also recorded in ``test-artifacts/bench.json`` (:mod:`bench.report`).

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
from typing import Any

import httpx
import nats
import uvloop
import websockets
from websockets.asyncio.server import broadcast, serve

from bench.report import record
from shared import subjects, topology
from shared.codec import encode
from shared.natsserver import EmbeddedNats
from shared.sessions import Live, Session, SessionKind
from shared.streams import Health, StreamRecord

WORKERS = os.cpu_count() or 2
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

class _Client(asyncio.Protocol):
    """One WebSocket connection, read by hand: handshake, then unmasked server frames."""

    def __init__(self, worker: _Worker, request: bytes) -> None:
        self.worker = worker
        self.request = request
        self.buffer = bytearray()
        self.upgraded = False
        self.greeted = False
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:  # uvloop's is no asyncio.Transport
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(f"handshake refused: {bytes(buffer[:80])!r}")
            del buffer[:end + 4]
            self.upgraded = True
        while len(buffer) >= 2:
            length, start = buffer[1] & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, start = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, start = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < start + length:
                return
            opcode = buffer[0] & 0x0F
            payload = bytes(buffer[start:start + length])
            del buffer[:start + length]
            if opcode == 0x9 and self.transport is not None:  # ping: a masked pong (zero mask)
                self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
            elif opcode in (0x1, 0x2):
                self.message(payload, now)

    def message(self, data: bytes, now: int) -> None:
        if not self.greeted:  # the gateway's snapshot (the bare server sends a hello)
            self.greeted = True
            self.worker.greeted()
            return
        at = data.find(MARK)
        if at >= 0:
            stamp = int(data[at + len(MARK):data.index(b'"', at + len(MARK))])
            self.worker.arrived(stamp, now - stamp)


class _Worker:
    """A client process's share of the connections, and what arrived at them."""

    def __init__(self, count: int, changes: int) -> None:
        self.count = count
        self.changes = changes
        self.ready = 0
        self.stamps: list[int] = []
        self.latencies: list[int] = []
        self.done = asyncio.Event()

    def greeted(self) -> None:
        self.ready += 1
        if self.ready == self.count:
            print("ready", flush=True)

    def arrived(self, stamp: int, latency: int) -> None:
        self.stamps.append(stamp)
        self.latencies.append(latency)
        if len(self.latencies) >= self.count * self.changes:
            self.done.set()


async def client_worker(url: str, count: int, changes: int) -> None:
    """Open ``count`` connections, say ``ready``, then report each change's arrival latency."""
    raise_nofile()
    parts = httpx.URL(url)
    request = (f"GET {parts.raw_path.decode()} HTTP/1.1\r\nHost: {parts.host}:{parts.port}\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
               "\r\n").encode()
    worker = _Worker(count, changes)
    loop = asyncio.get_running_loop()
    transports = []
    for start in range(0, count, 100):  # in batches: a thundering herd is not what is measured
        made = await asyncio.gather(*(loop.create_connection(
            lambda: _Client(worker, request), parts.host, parts.port)
            for _ in range(min(100, count - start))))
        transports += [t for t, _ in made]
        await asyncio.sleep(0.05)
    try:
        await asyncio.wait_for(worker.done.wait(), 120)
    except TimeoutError:
        pass  # report what arrived: the driver prints the share received
    finally:
        print(json.dumps([worker.stamps, worker.latencies]), flush=True)
        for transport in transports:
            transport.close()


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


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(url: str, nats_url: str, count: int, changes: int, server_pid: int) -> dict[str, float]:
    before = rss_kb(server_pid)
    procs = start_clients(url, count, changes)
    time.sleep(1.0)
    after = rss_kb(server_pid)
    server_cpu = cpu_seconds(server_pid)
    clients_cpu = [cpu_seconds(p.pid) for p in procs]
    asyncio.run(put_changes(nats_url, changes, 0.15))
    server_cpu = cpu_seconds(server_pid) - server_cpu
    clients_cpu = [cpu_seconds(p.pid) - c for p, c in zip(procs, clients_cpu, strict=True)]
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
            "kb_per_conn": (after - before) / count, "server_cpu": server_cpu,
            "clients_cpu": max(clients_cpu)}


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
              f"{'received':>9} {'KB/conn':>8} {'CPU s: server':>14} {'busiest client':>15}")
        results = {}
        for count in counts:
            for name, url, pid in (("gateway", f"ws://127.0.0.1:{port}/ws", gateway.pid),
                                   ("bare", f"ws://127.0.0.1:{bare_port}/", bare.pid)):
                r = measure(url, nats_url, count, args.changes, pid)
                results[(count, name)] = r
                print(f"{count:>8} {name:>8} {r['p50']:>8.1f} {r['p99']:>8.1f} {r['max']:>8.1f} "
                      f"{r['received']:>9.1%} {r['kb_per_conn']:>8.1f} {r['server_cpu']:>14.2f} "
                      f"{r['clients_cpu']:>15.2f}", flush=True)
                time.sleep(2)  # let the previous clients' connections close
        for count in counts:
            g, b = results[(count, "gateway")], results[(count, "bare")]
            print(f"{count} clients: gateway p99 / bare p99 = {g['p99'] / b['p99']:.2f} "
                  f"(target: <= 1.0); gateway {g['kb_per_conn']:.1f} KB per connection "
                  f"(target: under 20 KB); bare {b['kb_per_conn']:.1f} KB")
            note = (f"KV put to arrival at every client, {args.changes} changes; clients: "
                    f"{WORKERS} raw-socket uvloop processes; gateway CPU {g['server_cpu']:.1f} s, "
                    f"busiest client process {g['clients_cpu']:.1f} s; received "
                    f"{g['received']:.1%}; one run")
            for q in ("p50", "p99", "max"):
                record(f"ws {count} clients gateway {q}", g[q], "ms",
                       anchor_name=f"bare websockets.broadcast {q}", anchor_value=b[q],
                       note=note + ("; target: ratio <= 1.0" if q == "p99" else ""))
            record(f"ws {count} clients gateway memory per connection", g["kb_per_conn"], "KB",
                   anchor_name="bare websockets.broadcast", anchor_value=b["kb_per_conn"],
                   note="server RSS growth / connections; target under 20 KB")
    finally:
        for proc in (gateway, bare):
            proc.send_signal(signal.SIGTERM)
        for proc in (gateway, bare):
            try:
                proc.wait(60)  # a loaded machine stops slowly
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        nats_server.stop()
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        uvloop.run(client_worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    elif len(sys.argv) > 1 and sys.argv[1] == "--bare":
        asyncio.run(bare_server(int(sys.argv[2]), sys.argv[3]))
    else:
        sys.exit(main())
