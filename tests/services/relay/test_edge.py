"""The relay's edge (cache hits answered without Litestar) against its Litestar routes, on one
real relay over a real nats-server and the demo origin: the same request answered both ways
gives the same status, headers (but ``date``) and body; what is not a hit never stops at the
edge."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import m3u8
import pytest
from nats.aio.client import Client
from prometheus_client import REGISTRY

from services.demo.app import create_app as demo_app
from services.relay.app import create_app
from services.relay.edge import Edge
from shared import subjects, topology
from shared.codec import encode
from shared.relay_urls import Signer, load_secret
from shared.settings import Settings, load_settings
from tests.services.extractor.conftest import Counting
from tests.services.relay.test_relay import SESSION, record

pytestmark = pytest.mark.timeout(120)
#: Requests under this prefix skip the edge and go to the relay's Litestar app itself.
LITESTAR = "/litestar"


def both_paths(edge: Edge) -> Callable[..., Any]:
    """The relay's app, and under :data:`LITESTAR` its Litestar app alone (same state)."""
    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith(LITESTAR + "/"):
            scope = {**scope, "path": scope["path"][len(LITESTAR):],
                     "raw_path": scope["raw_path"][len(LITESTAR):]}
            await edge.app(scope, receive, send)
            return
        await edge(scope, receive, send)
    return asgi


class Relay:
    def __init__(self, base: str, settings: Settings) -> None:
        self.base = base
        self.settings = settings
        self.signer = Signer(load_secret(None, settings.data_path))

    def url(self, stream_id: str = "plain", ttl: float = 600) -> str:
        return self.signer.master_url(self.base, SESSION, stream_id, ttl)


@pytest.fixture
async def relay(nc: Client, nats_url: str, serve: Callable[[Any], str], tmp_path: Path) -> Relay:
    """The relay in front of the demo origin, with a stream record for it."""
    demo = serve(Counting(demo_app(token="tok", cookie="c00kie")))
    settings = load_settings(env={"SLIPSTREAM_DATA_DIR": str(tmp_path),
                                  "SLIPSTREAM_EGRESS_ALLOW": demo.removeprefix("http://")})
    kv = await topology.streams_kv(nc.jetstream())
    await kv.put(subjects.stream_key(SESSION, "plain"),
                 encode(record("plain", f"{demo}/live/master.m3u8")))
    return Relay(serve(both_paths(create_app(settings, [nats_url]))), settings)


def hits(kind: str) -> float:
    return REGISTRY.get_sample_value("slipstream_relay_edge_hits_total", {"kind": kind}) or 0.0


def answer(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers (sorted, without the date) and body."""
    headers = sorted((k, v) for k, v in response.headers.multi_items() if k != "date")
    return response.status_code, headers, response.content


async def both(http: httpx.AsyncClient, url: str, **kw: Any) -> tuple[httpx.Response,
                                                                         httpx.Response]:
    """``url`` through the relay's app, then through its Litestar app alone."""
    path = url.removeprefix(str(http.base_url).rstrip("/"))
    return await http.get(path, **kw), await http.get(LITESTAR + path, **kw)


async def walk(http: httpx.AsyncClient, relay: Relay) -> tuple[str, str, str]:
    """Master, media playlist and last segment paths (each fetched once: cached now)."""
    master = await http.get(relay.url().removeprefix(relay.base))
    assert master.status_code == 200, master.text
    media_path = m3u8.loads(master.text).playlists[1].uri
    media = await http.get(media_path)
    assert media.status_code == 200, media.text
    segment_path = m3u8.loads(media.text).segments[-1].uri
    segment = await http.get(segment_path)
    assert segment.status_code == 200
    return relay.url().removeprefix(relay.base), media_path, segment_path


async def test_cache_hits_are_answered_by_the_edge_exactly_as_by_litestar(relay: Relay) -> None:
    """Master, media playlist and segment hits: the edge answers them (its counters move), with
    the status, headers and body the Litestar routes give for the same request."""
    async with httpx.AsyncClient(base_url=relay.base, timeout=20) as http:
        paths = await walk(http, relay)
        for path, kind in zip(paths, ("playlist", "playlist", "segment"), strict=True):
            before = hits(kind)
            edge, litestar = await both(http, relay.base + path)
            assert hits(kind) == before + 1, path
            assert edge.status_code == 200
            assert answer(edge) == answer(litestar), path
        assert edge.headers["content-length"] == str(len(edge.content))
        assert edge.headers["content-type"] == "video/mp2t"


async def test_a_playlist_hit_carries_each_viewers_own_link(relay: Relay) -> None:
    """Two viewers with different signed links get the same cached page, each with its own
    prefix in every URI, from the edge and from Litestar alike."""
    async with httpx.AsyncClient(base_url=relay.base, timeout=20) as http:
        await walk(http, relay)
        other = relay.url(ttl=900).removeprefix(relay.base)
        first = await http.get(other)  # rewritten already: a hit for this new link too
        before = hits("playlist")
        edge, litestar = await both(http, relay.base + other)
    assert hits("playlist") == before + 1
    assert answer(edge) == answer(litestar) == answer(first)
    prefix = other.rsplit("/", 1)[0]
    uris = [p.uri for p in m3u8.loads(edge.text).playlists]
    assert uris
    assert all(u.startswith(prefix + "/") for u in uris), (prefix, uris)


async def test_cors_headers_of_a_hit_are_litestars(relay: Relay) -> None:
    """A hit asked with the web UI's Origin (and with another) gets Litestar's CORS headers."""
    async with httpx.AsyncClient(base_url=relay.base, timeout=20) as http:
        _, media_path, segment_path = await walk(http, relay)
        for origin in (relay.settings.gateway_url, "http://elsewhere.example"):
            for path in (media_path, segment_path):
                edge, litestar = await both(http, relay.base + path, headers={"Origin": origin})
                assert answer(edge) == answer(litestar)
        assert edge.headers.get("access-control-allow-origin") is None
        edge, _ = await both(http, relay.base + segment_path,
                             headers={"Origin": relay.settings.gateway_url})
    assert edge.headers["access-control-allow-origin"] == relay.settings.gateway_url


async def test_misses_bad_links_ranges_and_head_are_left_to_litestar(relay: Relay) -> None:
    """A segment's first request (a miss), forged, expired and unknown links, a byte range, HEAD
    and an LL-HLS blocking request never stop at the edge, and answer as Litestar does."""
    async with httpx.AsyncClient(base_url=relay.base, timeout=20) as http:
        master_path, media_path, _ = await walk(http, relay)
        media = m3u8.loads((await http.get(media_path)).text)
        before = hits("playlist"), hits("segment")
        miss = await http.get(media.segments[0].uri)
        assert miss.status_code == 200  # (whole or streamed, as fast as it arrived: Litestar's)
        hit = await http.get(media.segments[0].uri)
        assert hit.content == miss.content
        forged = master_path.replace(SESSION, "2026.other.race")
        expired = relay.url(ttl=-5).removeprefix(relay.base)
        unknown = relay.url("nope").removeprefix(relay.base)
        for path in (forged, expired, unknown, f"{master_path[:-len('master.m3u8')]}m/AAAA.ts"):
            edge, litestar = await both(http, relay.base + path)
            assert edge.status_code in (403, 404, 410)
            assert answer(edge) == answer(litestar)
        segment = media.segments[-1].uri
        edge, litestar = await both(http, relay.base + segment, headers={"Range": "bytes=0-187"})
        assert edge.status_code == 206
        assert answer(edge) == answer(litestar)
        edge, litestar = await both(http, relay.base + segment)  # a hit: counted below
        head = await http.head(segment)
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == str(len(edge.content))
        blocking = await http.get(media_path + "?_HLS_msn=1")
        assert blocking.status_code in (200, 502)
        # the only hits: the second request for the first segment, and the last one via the edge
        assert (hits("playlist"), hits("segment")) == (before[0], before[1] + 2)
