"""Every candidate gets its turn and the live one wins: a decoy VOD or ad before the live
stream is not taken, a playlist is known by its body, not its name, and the record carries the
identity the stream needs (never a library's User-Agent)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from litestar import Litestar, MediaType, Request, Response, get
from litestar.datastructures import State

from services.extractor.registry import Context
from services.extractor.resolve import ResolveError, resolve
from shared.egress import EgressPolicy, client
from shared.identity import BROWSER_USER_AGENT
from shared.streams import Health

VOD = ("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-PLAYLIST-TYPE:VOD\n"
       "#EXTINF:4.0,\nad0.ts\n#EXTINF:4.0,\nad1.ts\n#EXT-X-ENDLIST\n")
LIVE = ("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:100\n"
        "#EXTINF:2.0,\ns100.ts\n#EXTINF:2.0,\ns101.ts\n#EXTINF:2.0,\ns102.ts\n")
PLAYLIST = "application/vnd.apple.mpegurl"
LIBRARIES = ("python-httpx", "python-requests", "yt-dlp", "streamlink")


def _refuse_libraries(request: Request[object, object, State]) -> None:
    agent = request.headers.get("user-agent", "")
    request.app.state.agents.append(agent)
    if not agent.startswith("Mozilla/") or any(lib in agent.lower() for lib in LIBRARIES):
        raise PermissionError(agent)


@get("/decoy", media_type=MediaType.HTML, sync_to_thread=False)
def decoy() -> str:
    return ('<html><head><title>Race</title></head><body><video id="p">'
            '<source src="/ads/preroll.m3u8" type="application/x-mpegurl">'
            '<source src="/cdn/live/mono.css" type="application/x-mpegurl"></video></body></html>')


@get("/only-vod", media_type=MediaType.HTML, sync_to_thread=False)
def only_vod() -> str:
    return '<html><body><video src="/ads/preroll.m3u8"></video></body></html>'


@get("/ads/preroll.m3u8", sync_to_thread=False)
def preroll(request: Request[object, object, State]) -> Response[str]:
    _refuse_libraries(request)
    return Response(VOD, media_type=PLAYLIST)


@get("/cdn/live/mono.css", sync_to_thread=False)
def live(request: Request[object, object, State]) -> Response[str]:
    """A live playlist named like a stylesheet, as real CDNs do; it refuses library agents."""
    _refuse_libraries(request)
    return Response(LIVE, media_type=PLAYLIST)


def _app() -> Litestar:
    def forbidden(_: Request[object, object, State], exc: PermissionError) -> Response[str]:
        return Response(f"agent refused: {exc}", status_code=403)

    return Litestar([decoy, only_vod, preroll, live], state=State({"agents": []}),
                    exception_handlers={PermissionError: forbidden})


@pytest.fixture
def origin(serve: Callable[..., str]) -> tuple[str, Litestar]:
    app = _app()
    return serve(app), app


async def test_the_live_stream_wins_over_a_decoy_vod_listed_before_it(
        origin: tuple[str, Litestar]) -> None:
    """The page lists an ad VOD first: it is probed and set aside; the live one is chosen."""
    base, app = origin
    policy = EgressPolicy.from_strings([base.removeprefix("http://")])
    async with client(policy) as http:
        ctx = Context(client=http, policy=policy, deadline=10)
        got = await resolve(f"{base}/decoy", "http", ctx)
    assert got.found.url == f"{base}/cdn/live/mono.css"
    assert got.probe.live
    assert got.probe.health is Health.OK
    verdicts = [(v.verdict, v.url.rsplit("/", 1)[1]) for v in got.attempts[0].candidates]
    assert verdicts == [("fallback", "preroll.m3u8"), ("accepted", "mono.css")]
    assert got.found.headers["User-Agent"] == BROWSER_USER_AGENT
    assert app.state.agents
    assert all(a == BROWSER_USER_AGENT for a in app.state.agents)


async def test_a_vod_is_taken_only_when_nothing_live_is_found(
        origin: tuple[str, Litestar]) -> None:
    """With only a VOD on the page, it is the fallback: playable, marked degraded."""
    base, _ = origin
    policy = EgressPolicy.from_strings([base.removeprefix("http://")])
    async with client(policy) as http:
        ctx = Context(client=http, policy=policy, deadline=10)
        got = await resolve(f"{base}/only-vod", "http", ctx)
    assert got.found.url == f"{base}/ads/preroll.m3u8"
    assert not got.probe.live
    assert got.probe.health is Health.DEGRADED


async def test_a_library_user_agent_set_by_the_source_is_what_the_cdn_sees(
        origin: tuple[str, Litestar]) -> None:
    """A source's own user_agent replaces the browser's (here one the CDN refuses: every
    candidate is then rejected with the CDN's answer)."""
    base, _ = origin
    policy = EgressPolicy.from_strings([base.removeprefix("http://")])
    async with client(policy) as http:
        ctx = Context(client=http, policy=policy, deadline=10, user_agent="python-requests/2.32")
        with pytest.raises(ResolveError) as caught:
            await resolve(f"{base}/decoy", "http", ctx)
    verdicts = caught.value.attempts[0].candidates
    assert [v.verdict for v in verdicts] == ["rejected", "rejected"]
    assert all("403" in v.why for v in verdicts)
