"""The KV buckets lost behind the system's back, with every service running as a process: the
`streams` and `sessions` buckets deleted, then the `streams` bucket emptied key by key, then
both buckets' streams purged. Nobody serves the old records in the meantime: the gateway forgets
their URLs at once, shows the streams as being re-resolved, and asks its WebSocket clients to
reconnect (1012). The buckets are re-created, the scheduler rebuilds `sessions` from the
calendar, the extractor re-resolves every stream, and playback works again."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import nats
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from services.gateway.views import RERESOLVING
from shared import topology
from shared.feed import CLOSE_RELOADED
from shared.kv import keys as kv_keys
from shared.natsserver import EmbeddedNats
from shared.settings import ExtractorSettings
from shared.streams import Health
from tests.conftest import free_port
from tests.procs import wait_until
from tests.system import System, healthy, records

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


async def _delete_buckets(url: str) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.delete_key_value(topology.STREAMS_BUCKET)
        await js.delete_key_value(topology.SESSIONS_BUCKET)
    finally:
        await nc.drain()


async def _empty_streams(url: str) -> int:
    nc = await nats.connect(url)
    try:
        kv = await topology.streams_kv(nc.jetstream())
        keys = await kv_keys(kv, ">")
        for key in keys:
            await kv.purge(key)
        return len(keys)
    finally:
        await nc.drain()


async def _purge_both(url: str) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.purge_stream(topology.SESSIONS_BUCKET_STREAM)
        await js.purge_stream(topology.STREAMS_BUCKET_STREAM)
    finally:
        await nc.drain()


async def _sprint_live(url: str) -> bool:
    nc = await nats.connect(url)
    values = []
    try:
        kv = await topology.sessions_kv(nc.jetstream())
        values = [(await kv.get(key)).value or b"" for key in await kv_keys(kv, "*.demo.sprint")]
    except nats.js.errors.NotFoundError:
        pass  # not re-created yet
    finally:
        await nc.close()
    return any(b'"phase":"live"' in value for value in values)


async def _closed_with(gateway: str, during: asyncio.Future[None]) -> int | None:
    async with websockets.connect(gateway.replace("http://", "ws://") + "/ws") as ws:
        await ws.recv()
        during.set_result(None)
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 30)
        except ConnectionClosed:
            return ws.close_code


def _plays(url: str) -> bool:
    try:
        return httpx.get(url, timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


def playable(system: System) -> bool:
    views = httpx.get(system.url("gateway", "/api/streams"), timeout=5).json()
    sprint = [v for v in views if ".demo.sprint" in v["session"]]
    if len(sprint) != 3 or any(v["health"] != "ok" for v in sprint):
        return False
    return all(httpx.get(v["playback_url"], timeout=10).status_code == 200 for v in sprint)


def rewritten(system: System, before: dict[str, tuple[Health, int]]) -> bool:
    """Whether exactly the records in ``before`` are there, healthy, each written again since
    (one read of the bucket per call: each read is a consumer on the server)."""
    now = records(system.servers)
    return set(now) == set(before) and all(
        health is Health.OK and revision > before[key][1] for key, (health, revision) in now.items())


def test_lost_buckets_are_rebuilt_and_nobody_serves_stale_streams(tmp_path: Path) -> None:
    node = EmbeddedNats(tmp_path / "nats", port=free_port())
    node.start()
    system = System(tmp_path / "data", [node.url])
    try:
        system.start("demo", "demo")
        for name in ("scheduler", "extractor", "relay"):
            system.start(name, name)
        system.start("gateway", "gateway", SLIPSTREAM_RELAY_PORT=str(system.ports["relay"]))
        system.wait_ready()
        wait_until(lambda: playable(system), 120, "the demo streams playable")

        async def delete_while_watching() -> int | None:
            connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            watching = asyncio.create_task(_closed_with(system.url("gateway"), connected))
            await connected
            await _delete_buckets(node.url)
            return await watching

        assert asyncio.run(delete_while_watching()) == CLOSE_RELOADED
        # The streams the gateway knew are shown as being re-resolved (no URL) until they are
        # back; one already re-resolved into the new bucket plays (once the relay, which checks
        # its own bucket every 2 s, has followed the new bucket too).
        views = httpx.get(system.url("gateway", "/api/streams"), timeout=5).json()
        sprint = [v for v in views if ".demo.sprint" in v["session"]]
        assert len(sprint) == 3
        for view in sprint:
            if view["playback_url"] == "":
                assert view["health_detail"] == RERESOLVING, view
            else:
                wait_until(lambda v=view: _plays(v["playback_url"]), 15,  # type: ignore[misc]
                           f"{view['id']}, re-resolved already, playing")
        try:
            wait_until(lambda: asyncio.run(_sprint_live(node.url)), 60,
                       "the sessions bucket rebuilt by the scheduler")
            wait_until(lambda: healthy(system.servers), 90, "streams re-resolved")
            wait_until(lambda: playable(system), 60, "playable again through the gateway and relay")

            # Emptied rather than deleted: the extractor notices on its next run of each job
            # (one probe interval away) and writes each record again after one extraction (the
            # extractor's deadline; the page was cached by the last one), plus slack for two
            # shared cores: that is the bound, not the 90 s a cold re-resolve is given above.
            before = records(system.servers)
            assert len(before) == 3
            assert asyncio.run(_empty_streams(node.url)) >= 3
            bound = (float(system.env["SLIPSTREAM_EXTRACTOR_PROBE_INTERVAL"])
                     + ExtractorSettings().deadline + 10)
            wait_until(lambda: rewritten(system, before), bound,
                       "streams re-resolved after their keys were emptied")
            wait_until(lambda: playable(system), 60, "playable again after the purge")

            # Both buckets' streams purged: no watcher hears that; every service notices.
            asyncio.run(_purge_both(node.url))
            wait_until(lambda: asyncio.run(_sprint_live(node.url)), 30, "sessions recorded again")
            wait_until(lambda: healthy(system.servers), 90, "streams re-resolved after the purge")
            wait_until(lambda: playable(system), 60, "playable after both streams were purged")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nsprint records: {records(system.servers)}\n"
                                 f"{system.tails()}") from None
        readiness = [json.loads(httpx.get(system.url(n, "/readyz")).text)["ready"]
                     for n in ("scheduler", "extractor", "relay", "gateway")]
        assert readiness == [True, True, True, True]
    finally:
        system.stop()
        node.stop()
