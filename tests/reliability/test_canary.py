"""A canary secret in a source's cookie and header is used (it is in the private record) and
never comes out: not in any service's log (at debug level), not in relayed playlists, not in
the REST API, the exports, the WebSocket feed or `slipstream replay`. Whole system, real
processes (`slipstream up`)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from pathlib import Path

import httpx
import nats
import pytest
import websockets

from shared import topology
from shared.kv import keys as kv_keys
from tests.conftest import free_ports
from tests.procs import Proc, base_env, module, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
CANARY = "CANARY-7f3a9c1e-do-not-leak"


async def _private_records(url: str) -> bytes:
    nc = await nats.connect(url)
    try:
        kv = await topology.streams_kv(nc.jetstream())
        return b"".join([(await kv.get(k)).value or b"" for k in await kv_keys(kv, "*.*.*.canary")])
    finally:
        await nc.drain()


async def _feed(gateway: str) -> str:
    async with websockets.connect(gateway.replace("http://", "ws://") + "/ws") as ws:
        return str(await ws.recv())


def test_a_canary_secret_never_leaves_the_back_end(tmp_path: Path) -> None:
    names = ("gateway", "relay", "scheduler", "extractor", "demo")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    config = tmp_path / "slipstream.toml"
    config.write_text(f"""
log_level = "debug"

[[sources]]
id = "canary"
name = "Canary source"
url = "http://127.0.0.1:{ports['demo']}/pages/plain?token={CANARY}"
cookies = {{ session = "{CANARY}" }}
headers = {{ "X-Canary" = "{CANARY}" }}
""")
    env = base_env(tmp_path / "data", SLIPSTREAM_CONFIG=str(config),
                   **{f"SLIPSTREAM_{n.upper()}_PORT": str(p) for n, p in ports.items()})
    proc = Proc([*module("services.cli"), "up"], env)
    gateway = f"http://127.0.0.1:{ports['gateway']}"
    try:
        proc.wait_for("Slipstream is ready", timeout=120)
        nats_url = json.loads((tmp_path / "data" / "runtime.json").read_text())["nats_url"]
        wait_until(lambda: CANARY.encode() in asyncio.run(_private_records(nats_url)), 60,
                   "the canary source resolved (the secret is in its private record)")
        seen: list[str] = []
        with httpx.Client(timeout=10) as http:
            views = http.get(f"{gateway}/api/streams").json()
            view = next(v for v in views if v["id"] == "canary")
            assert view["health"] == "ok"
            master = http.get(view["playback_url"])
            assert master.status_code == 200
            media_uri = next(line for line in master.text.splitlines() if line and line[0] != "#")
            relay = view["playback_url"].split("/", 3)[:3]
            media = http.get("/".join(relay) + media_uri)
            seen += [json.dumps(views), master.text, media.text, str(master.headers),
                     str(media.headers)]
            for path in ("/api/live", "/api/sessions", "/export/live.m3u", "/export/calendar.ics"):
                seen.append(http.get(gateway + path).text)
        seen.append(asyncio.run(_feed(gateway)))
        for stream in ("streams", "SESSIONS", "JOBS"):
            out = subprocess.run([*module("services.cli"), "replay", stream, "--json"], env=env,
                                 capture_output=True, text=True, timeout=60, check=False)
            assert out.returncode == 0, out.stderr
            seen.append(out.stdout)
    finally:
        proc.stop(signal.SIGTERM)
    logs = [p.read_text(errors="replace") for p in (tmp_path / "data" / "logs").glob("*")]
    assert logs
    assert sum(len(text) for text in logs) > 10_000  # debug logs were written
    for text in [*seen, *logs, proc.output]:
        assert CANARY not in text
