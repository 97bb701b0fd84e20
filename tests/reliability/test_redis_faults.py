"""Redis killed under two relay replicas that share upstream fetches through it, then started
again on the same port: viewers on both relays keep getting every segment while it is gone
(each relay falls back to its own fetch, nothing hangs), /readyz says why, and once Redis is
back the replicas share one upstream fetch per segment again, without a restart."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import m3u8
import pytest

from services.relay.app import create_app
from shared.cache import RETRY_REDIS_AFTER
from shared.settings import load_settings
from tests.conftest import start_redis
from tests.services.relay.test_relay import Setup, setup  # noqa: F401 - the relay fixture

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


async def test_redis_killed_and_back_under_two_relays(
        setup: Setup, nats_url: str, serve: Callable[..., str], tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "redis").mkdir()
    redis, url = start_redis(tmp_path / "redis")
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    settings = load_settings(env={"SLIPSTREAM_DATA_DIR": str(setup.settings.data_path),
                                  "SLIPSTREAM_EGRESS_ALLOW": setup.demo.removeprefix("http://"),
                                  "SLIPSTREAM_REDIS_URL": url, "SLIPSTREAM_REDIS_TIMEOUT": "0.3"})
    relays = [serve(create_app(settings, [nats_url])) for _ in range(2)]
    try:
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
        async with httpx.AsyncClient() as http:
            for base in relays:
                for _ in range(50):
                    if (await http.get(base + "/readyz")).status_code == 200:
                        break
                    await asyncio.sleep(0.2)
                assert (await http.get(base + "/readyz")).status_code == 200
        again_hits, statuses = await newest_segment_hits(setup, relays, media_path)
        assert statuses == {200}
        assert again_hits == 1, "after Redis came back"  # sharing again, without a restart
    finally:
        redis.terminate()
        redis.wait(10)
