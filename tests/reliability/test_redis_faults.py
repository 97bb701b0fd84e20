"""Redis under two relay replicas that share upstream fetches through it: started after them,
killed and started again on the same port, then frozen (SIGSTOP: it accepts connections and
never answers) and thawed. While it is away or frozen, viewers on both relays keep getting every
segment (each relay falls back to its own fetch, nothing hangs), /readyz says why, and once Redis
answers again the replicas share one upstream fetch per segment again, without a restart."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import m3u8
import pytest
import redis as redis_client

from services.relay.app import create_app
from shared.cache import RETRY_REDIS_AFTER
from shared.natsserver import EmbeddedNats
from shared.settings import load_settings
from tests.conftest import free_port, start_redis
from tests.procs import status, wait_until
from tests.services.relay.test_relay import Setup, setup  # noqa: F401 - the relay fixture
from tests.system import System, go_live

pytestmark = pytest.mark.timeout(180)


async def newest_segment_hits(origin: Setup, relays: list[str], media_path: str) -> tuple[int, set[int]]:
    """Ten viewers on each relay ask for the newest segment; its upstream requests, and the
    statuses the viewers got."""
    async with httpx.AsyncClient(timeout=30) as http:
        media = m3u8.loads((await http.get(relays[0] + media_path)).text)
        segment = media.segments[-1].uri
        name = segment.rsplit("/", 1)[-1]
        before = sum(n for p, n in origin.origin.hits.items() if p.endswith(".ts"))
        started = time.monotonic()
        got = await asyncio.gather(*(http.get(base + segment) for base in relays for _ in range(10)))
        assert time.monotonic() - started < 10, name  # nothing hung
    after = sum(n for p, n in origin.origin.hits.items() if p.endswith(".ts"))
    return after - before, {r.status_code for r in got}


async def readiness(relays: list[str]) -> list[tuple[int, str]]:
    """Each relay's /readyz status and what it says of Redis, asked with a short timeout (a
    readiness check that hangs on a frozen Redis would fail here)."""
    async with httpx.AsyncClient(timeout=3) as http:
        answers = [await http.get(base + "/readyz") for base in relays]
    return [(r.status_code, r.json()["checks"].get("redis", "")) for r in answers]


async def until_ready(relays: list[str]) -> None:
    for _ in range(int((RETRY_REDIS_AFTER + 10) / 0.2)):
        if {code for code, _ in await readiness(relays)} == {200}:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"relays not ready: {await readiness(relays)}")


async def test_redis_late_killed_frozen_and_back_under_two_relays(
        setup: Setup, nats_url: str, serve: Callable[..., str], tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "redis").mkdir()
    port = free_port()
    settings = load_settings(env={"SLIPSTREAM_DATA_DIR": str(setup.settings.data_path),
                                  "SLIPSTREAM_EGRESS_ALLOW": setup.demo.removeprefix("http://"),
                                  "SLIPSTREAM_REDIS_URL": f"redis://127.0.0.1:{port}/0",
                                  "SLIPSTREAM_REDIS_TIMEOUT": "0.3"})
    relays = [serve(create_app(settings, [nats_url])) for _ in range(2)]
    # Started before Redis: not ready, saying why, and ready by themselves once it comes.
    for _ in range(50):
        if all(code == 503 and why for code, why in await readiness(relays)):
            break
        await asyncio.sleep(0.1)
    assert all(code == 503 and why for code, why in await readiness(relays)), await readiness(relays)
    redis, _ = start_redis(tmp_path / "redis", port)
    try:
        await until_ready(relays)
        async with httpx.AsyncClient(timeout=30) as http:
            master = m3u8.loads((await http.get(setup.url("plain").replace(setup.relay, relays[0]))).text)
            for base in relays:  # both learn the stream's links
                assert (await http.get(setup.url("plain").replace(setup.relay, base))).status_code == 200
        media_path = master.playlists[1].uri

        shared_hits, statuses = await newest_segment_hits(setup, relays, media_path)
        assert statuses == {200}
        assert shared_hits == 1, "before the kill"  # one upstream fetch for 20 viewers on two relays

        redis.send_signal(signal.SIGKILL)
        redis.wait(10)
        await asyncio.sleep(2.1)  # a new segment
        alone_hits, statuses = await newest_segment_hits(setup, relays, media_path)
        assert statuses == {200}  # every viewer served, from upstream
        assert 1 <= alone_hits <= 2  # at most one fetch per relay
        async with httpx.AsyncClient() as http:
            ready = await http.get(relays[0] + "/readyz")
        assert ready.status_code == 503
        assert "redis" in ready.json()["checks"]

        redis, _ = start_redis(tmp_path / "redis", port)  # the same address again
        await asyncio.sleep(RETRY_REDIS_AFTER + 2.1)  # the relays' back-off, and a new segment
        await until_ready(relays)
        again_hits, statuses = await newest_segment_hits(setup, relays, media_path)
        assert statuses == {200}
        assert again_hits == 1, "after Redis came back"  # sharing again, without a restart

        redis.send_signal(signal.SIGSTOP)  # connections accepted, nothing ever answered
        await asyncio.sleep(2.1)
        frozen_hits, statuses = await newest_segment_hits(setup, relays, media_path)
        assert statuses == {200}  # every call timed out fast and fell back to upstream
        assert 1 <= frozen_hits <= 2
        for _ in range(30):  # the first call that timed out marks Redis as failing
            if all(code == 503 and why for code, why in await readiness(relays)):
                break
            await asyncio.sleep(0.2)
        assert all(code == 503 and why for code, why in await readiness(relays))

        redis.send_signal(signal.SIGCONT)
        await asyncio.sleep(RETRY_REDIS_AFTER + 2.1)
        await until_ready(relays)
        thawed_hits, statuses = await newest_segment_hits(setup, relays, media_path)
        assert statuses == {200}
        assert thawed_hits == 1, "after Redis answered again"
    finally:
        redis.send_signal(signal.SIGCONT)
        redis.terminate()
        redis.wait(10)


def _extractor_entries(url: str) -> list[bytes]:
    client = redis_client.Redis.from_url(url, socket_timeout=2)
    try:
        return list(client.scan_iter(match="slipstream:extract:*"))
    finally:
        client.close()


def _flush(url: str) -> None:
    client = redis_client.Redis.from_url(url, socket_timeout=2)
    try:
        client.flushall()
    finally:
        client.close()


def _not_ready_for_redis(system: System, name: str) -> bool:
    try:
        reply = httpx.get(system.url(name, "/readyz"), timeout=3)
    except httpx.ConnectError:
        return False  # not listening yet (a hang is not caught: it fails the test)
    return reply.status_code == 503 and bool(reply.json()["checks"].get("redis"))


def _plays(system: System, session: str) -> bool:
    views = httpx.get(system.url("gateway", "/api/streams"), params={"session": session},
                      timeout=5).json()
    return len(views) == 3 and all(
        v["health"] == "ok" and httpx.get(v["playback_url"], timeout=5).status_code == 200
        for v in views)


@pytest.mark.slow
def test_the_extractor_and_relay_processes_wait_for_redis_and_ride_out_a_frozen_one(
        tmp_path: Path) -> None:
    """The services as processes, started before Redis: not ready, saying why, until it comes.
    Frozen (SIGSTOP) under them, a session that goes live still gets healthy, playable streams
    (every Redis call times out fast: the extractor's cache and source limits fall back to
    memory, the relay fetches upstream itself). Thawed, they use Redis again, no restart."""
    node = EmbeddedNats(tmp_path / "nats", port=free_port())
    node.start()
    (tmp_path / "redis").mkdir()
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    system = System(tmp_path / "data", [node.url])
    system.env.update(SLIPSTREAM_REDIS_URL=url, SLIPSTREAM_REDIS_TIMEOUT="0.3")
    redis: subprocess.Popen[bytes] | None = None
    try:
        system.start("demo", "demo")
        for name in ("extractor", "relay"):
            system.start(name, name)
        system.start("gateway", "gateway", SLIPSTREAM_RELAY_PORT=str(system.ports["relay"]))
        for name in ("extractor", "relay"):
            wait_until(lambda n=name: _not_ready_for_redis(system, n), 60,  # type: ignore[misc]
                       f"{name} not ready for want of Redis")
        redis, _ = start_redis(tmp_path / "redis", port)
        system.wait_ready(timeout=30)

        go_live(system.servers, "2099.early.race")
        wait_until(lambda: _plays(system, "2099.early.race"), 90, "streams with Redis")
        assert _extractor_entries(url), "the extractor caches its resolutions in Redis"

        redis.send_signal(signal.SIGSTOP)  # accepts connections, never answers
        go_live(system.servers, "2099.frozen.race")
        wait_until(lambda: _plays(system, "2099.frozen.race"), 90, "streams with Redis frozen")
        for name in ("extractor", "relay"):
            wait_until(lambda n=name: _not_ready_for_redis(system, n), 30,  # type: ignore[misc]
                       f"{name} says Redis is not answering")
            assert status(system.url(name, "/healthz")) == 200

        redis.send_signal(signal.SIGCONT)
        system.wait_ready(timeout=30)
        _flush(url)
        go_live(system.servers, "2099.after.race")
        wait_until(lambda: _plays(system, "2099.after.race"), 90, "streams after the thaw")
        assert _extractor_entries(url), "the extractor uses Redis again, without a restart"
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{system.tails()}") from None
    finally:
        system.stop()
        if redis is not None:
            redis.send_signal(signal.SIGCONT)
            redis.terminate()
            redis.wait(10)
        node.stop()
