"""A canary secret in a source's URL, cookie and header is used (it is in the private record)
and never comes out: not in any service's log (at debug level), not in relayed playlists, not
in the REST API, the exports, the WebSocket feed or `slipstream replay`. Whole system, real
processes (`slipstream up`), the public events the ``consumer`` NATS user reads included.

A second source carries the canary in its page URL (``?token=...``) and in the playlist URL
its page links to; it works, then its origin fails (HTTP 503: the probe fails, re-resolving
fails with every extractor's error reason), then it recovers and is re-resolved. Whatever the
extractors said about the failing page, the secret stays in the back end."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import nats
import nats.errors
import pytest
import websockets
from nats.js.api import DeliverPolicy
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from shared import subjects, topology
from shared.kv import keys as kv_keys
from tests.conftest import free_ports
from tests.procs import Proc, base_env, login, module, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
CANARY = "CANARY-7f3a9c1e-do-not-leak"


class _FlakyOrigin(BaseHTTPRequestHandler):
    """A source page and its stream (the demo's open stream, proxied), both behind a token in
    the query string; ``server.failing`` makes every answer a 503."""

    server: _FlakyServer

    def do_GET(self) -> None:
        if self.server.failing.is_set():
            self._send(503, b"unavailable", "text/plain")
        elif self.path == f"/page?token={CANARY}":
            html = (f'<html><head><title>Flaky</title></head><body>'
                    f'<video src="/hls/master.m3u8?token={CANARY}"></video></body></html>')
            self._send(200, html.encode(), "text/html")
        elif self.path.startswith("/hls/"):
            upstream = f"{self.server.demo}/live/{self.path.removeprefix('/hls/').split('?')[0]}"
            try:
                with urllib.request.urlopen(upstream, timeout=10) as answer:  # noqa: S310 - loopback
                    self._send(200, answer.read(), answer.headers.get("Content-Type", ""))
            except urllib.error.HTTPError as exc:
                self._send(exc.code, b"", "text/plain")
        else:
            self._send(404, b"", "text/plain")

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


class _FlakyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, demo: str) -> None:
        super().__init__(("127.0.0.1", 0), _FlakyOrigin)
        self.demo = demo
        self.failing = threading.Event()


@contextmanager
def _flaky_origin(demo: str) -> Iterator[_FlakyServer]:
    server = _FlakyServer(demo)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def _feed_listener(gateway: str) -> Iterator[list[str]]:
    """Every message the WebSocket feed sends while the block runs (snapshot, then changes)."""
    received: list[str] = []
    stop = threading.Event()
    connected = threading.Event()

    def listen() -> None:
        with ws_connect(gateway.replace("http://", "ws://") + "/ws") as ws:
            connected.set()
            while not stop.is_set():
                try:
                    received.append(str(ws.recv(timeout=0.5)))
                except TimeoutError:
                    continue
                except ConnectionClosed:
                    return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert connected.wait(10), "the WebSocket feed did not accept a client"
    try:
        yield received
    finally:
        stop.set()
        thread.join(5)


async def _private_records(url: str, source: str, data: Path) -> bytes:
    nc = await nats.connect(url, **login(data, "ops"))
    try:
        kv = await topology.streams_kv(nc.jetstream())
        keys = await kv_keys(kv, f"*.*.*.{source}")
        return b"".join([(await kv.get(k)).value or b"" for k in keys])
    finally:
        await nc.drain()


async def _public_events(url: str, data: Path) -> str:
    """Every public event stored (the last of each subject), read as the consumer user."""
    nc = await nats.connect(url, **login(data, "consumer"))
    got: list[str] = []
    try:
        sub = await nc.jetstream().subscribe(
            subjects.PUBLIC_ALL, stream=topology.PUBLIC_STREAM, ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT)
        with contextlib.suppress(TimeoutError, nats.errors.TimeoutError):
            while True:
                msg = await sub.next_msg(timeout=1)
                got.append(f"{msg.subject} {msg.data.decode()}")
        await sub.unsubscribe()
    finally:
        await nc.drain()
    return "\n".join(got)


async def _feed(gateway: str) -> str:
    async with websockets.connect(gateway.replace("http://", "ws://") + "/ws") as ws:
        return str(await ws.recv())


def _view(http: httpx.Client, gateway: str, stream: str) -> tuple[dict[str, Any] | None, str]:
    """The public view of one stream (None while it has none), and the API's whole answer."""
    answer = http.get(f"{gateway}/api/streams")
    return next((v for v in answer.json() if v["id"] == stream), None), answer.text


def _relayed(http: httpx.Client, view: dict[str, Any]) -> list[str]:
    """A stream's relayed master and first media playlist, with their headers."""
    master = http.get(view["playback_url"])
    assert master.status_code == 200, master.text
    media_uri = next(line for line in master.text.splitlines() if line and line[0] != "#")
    relay = view["playback_url"].split("/", 3)[:3]
    media = http.get("/".join(relay) + media_uri)
    assert media.status_code == 200, media.text
    return [master.text, media.text, str(master.headers), str(media.headers)]


def test_a_canary_secret_never_leaves_the_back_end(tmp_path: Path) -> None:
    names = ("gateway", "relay", "scheduler", "extractor", "demo")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    demo = f"http://127.0.0.1:{ports['demo']}"
    with _flaky_origin(demo) as flaky:
        flaky_port = flaky.server_address[1]
        config = tmp_path / "slipstream.toml"
        config.write_text(f"""
log_level = "debug"

[extractor]
probe_interval = 2
deadline = 5

[egress]
allow = ["127.0.0.1:{flaky_port}"]

[[sources]]
id = "canary"
name = "Canary source"
url = "{demo}/pages/plain?token={CANARY}"
cookies = {{ session = "{CANARY}" }}
headers = {{ "X-Canary" = "{CANARY}" }}

[[sources]]
id = "flaky"
name = "Flaky source"
url = "http://127.0.0.1:{flaky_port}/page?token={CANARY}"
""")
        env = base_env(tmp_path / "data", SLIPSTREAM_CONFIG=str(config),
                       **{f"SLIPSTREAM_{n.upper()}_PORT": str(p) for n, p in ports.items()})
        proc = Proc([*module("services.cli"), "up"], env)
        gateway = f"http://127.0.0.1:{ports['gateway']}"
        #: What a viewer can reach, by where it was seen.
        seen: list[tuple[str, str]] = []
        try:
            proc.wait_for("Slipstream is ready", timeout=120)
            nats_url = json.loads((tmp_path / "data" / "runtime.json").read_text())["nats_url"]
            for source in ("canary", "flaky"):
                wait_until(lambda s=source: CANARY.encode() in asyncio.run(  # type: ignore[misc]
                    _private_records(nats_url, s, tmp_path / "data")), 60,
                    f"the {source} source resolved (the secret is in its private record)")
            with httpx.Client(timeout=10) as http, _feed_listener(gateway) as feed:
                wait_until(lambda: (_view(http, gateway, "flaky")[0] or {}).get("health") == "ok",
                           30, "the flaky source plays")
                views = http.get(f"{gateway}/api/streams").json()
                view = next(v for v in views if v["id"] == "canary")
                assert view["health"] == "ok"
                seen += [("relayed playlist (canary)", text) for text in _relayed(http, view)]
                flaky_view = next(v for v in views if v["id"] == "flaky")
                seen += [("relayed playlist (flaky)", text) for text in _relayed(http, flaky_view)]

                # The origin fails: the probe fails, then re-resolving fails with every
                # extractor's reason in the private record.
                flaky.failing.set()
                deadline = time.monotonic() + 60
                health = "ok"
                while health != "dead":
                    assert time.monotonic() < deadline, "the failing source was never marked dead"
                    found, text = _view(http, gateway, "flaky")
                    seen.append(("REST /api/streams (failing)", text))
                    health = (found or {}).get("health", "")
                    time.sleep(0.25)
                for path in ("/api/live", "/api/sessions", "/export/live.m3u",
                             "/export/calendar.ics"):
                    seen.append((f"{path} (failing)", http.get(gateway + path).text))
                seen.append(("WebSocket snapshot (failing)", asyncio.run(_feed(gateway))))

                # It recovers and is resolved again.
                flaky.failing.clear()
                wait_until(lambda: (_view(http, gateway, "flaky")[0] or {}).get("health") == "ok",
                           60, "the flaky source re-resolved")
                views = http.get(f"{gateway}/api/streams").json()
                seen.append(("REST /api/streams", json.dumps(views)))
                flaky_view = next(v for v in views if v["id"] == "flaky")
                seen += [("relayed playlist (flaky, re-resolved)", text)
                         for text in _relayed(http, flaky_view)]
                for path in ("/api/live", "/api/sessions", "/export/live.m3u",
                             "/export/calendar.ics"):
                    seen.append((path, http.get(gateway + path).text))
                time.sleep(1)  # the last changes reach the feed
            seen += [("WebSocket feed", message) for message in feed]
            public = asyncio.run(_public_events(nats_url, tmp_path / "data"))
            assert "public.streams." in public
            assert "Canary source" in public
            seen.append(("public events (consumer user)", public))
            seen.append(("WebSocket snapshot", asyncio.run(_feed(gateway))))
            for stream in ("streams", "SESSIONS", "JOBS"):
                out = subprocess.run([*module("services.cli"), "replay", stream, "--json"],
                                     env=env, capture_output=True, text=True, timeout=60,
                                     check=False)
                assert out.returncode == 0, out.stderr
                seen.append((f"slipstream replay {stream}", out.stdout))
        finally:
            proc.stop(signal.SIGTERM)
    logs = [(f"log {p.name}", p.read_text(errors="replace"))
            for p in (tmp_path / "data" / "logs").glob("*")]
    assert logs
    assert sum(len(text) for _, text in logs) > 10_000  # debug logs were written
    assert any("flaky" in text and "dead" in text for _, text in logs)  # the failure was logged
    leaks = {where: text[max(0, text.find(CANARY) - 300):text.find(CANARY) + 100]
             for where, text in [*seen, *logs, ("slipstream up output", proc.output)]
             if CANARY in text}
    assert not leaks, f"the canary leaked into {', '.join(leaks)}: {leaks}"
