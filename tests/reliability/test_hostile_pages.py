"""Hostile pages against the http extractor: every one ends in a typed error or a bounded
result, never a hang (pytest-timeout enforces it), and the event loop keeps serving while the
worker thread scans. Speed is measured in ``bench/``, not asserted here.

Pages: a huge packed script, packing nested past the depth cap, base64 nested a thousand
deep, 2 MB scripts of near-matches made to trigger backtracking in naive regexes, a tag
crowded with attributes and nesting 400,000 deep (what makes HTML parsers quadratic or lose
content), and origins whose iframes go on for ever, in depth and in breadth.
"""

from __future__ import annotations

import asyncio
import base64
from collections import Counter
from collections.abc import Callable
from functools import cache

import pytest
from litestar import Litestar, MediaType, Request, get
from litestar.datastructures import State
from litestar.params import FromPath

from services.extractor.extractors.http import (
    MAX_IFRAME_DEPTH,
    MAX_PAGE,
    MAX_PAGES,
    HttpExtractor,
)
from services.extractor.registry import Context, ExtractionError, Found
from shared.egress import EgressPolicy, client
from tests.services.extractor.scan.test_packer import pack

pytestmark = pytest.mark.timeout(120)
NEEDLE = "https://cdn.test/live/needle.m3u8"
SIZE = MAX_PAGE - 64 * 1024  # what fits under the page cap with the markup around it


def _script(body: str) -> str:
    return f"<html><head><title>hostile</title></head><body><script>{body}</script></body></html>"


def _fill(unit: str, size: int = SIZE) -> str:
    return unit * (size // len(unit))


@cache
def page(name: str) -> str:
    """The hostile page ``name`` (built once per test run)."""
    if name == "huge-packed":
        source = ";".join(f"var v{n}='https://cdn{n % 50}.test/p/{n}'" for n in range(30_000))
        return _script(pack(source + f";player.load('{NEEDLE}')"))
    if name == "packed-nested":
        inner = f"player.load('{NEEDLE}')"
        while len(packed := pack(inner)) < SIZE:  # about 12 levels, past the depth cap
            inner = packed
        return _script(inner)
    if name == "atob-1000-deep":
        layered = NEEDLE
        for _ in range(25):
            layered = base64.b64encode(f"atob('{layered}')".encode()).decode()
        return _script("var u=" + "atob(" * 1000 + f"'{layered}'" + ")" * 1000 + ";")
    if name == "crowded-tag":
        return ("<div " + " ".join(f"a{n}='>'" for n in range(60_000)) + "></div>"
                f"<video src='{NEEDLE}'></video>")
    if name == "deep-nesting":
        return "<div>" * 400_000 + f"<video src='{NEEDLE}'></video>"
    return _script(NEAR_MISSES[name]())


#: 2 MB scripts of near-matches for every decoder: each starts something that never finishes.
NEAR_MISSES: dict[str, Callable[[], str]] = {
    "concat-markup": lambda: "document.write(" + _fill("'<ifr'+'ame'+") + "x);",
    "eval-function": lambda: _fill("eval(function(p,a,c,k,e,d){"),
    "escaped-slashes": lambda: _fill("'https:\\/\\/a.test\\/"),
    "many-playlists": lambda: "".join(f"'https://a.test/{n}.m3u8'," for n in range(70_000)),
    "open-string": lambda: '"' + _fill('\\"a'),
    "regex-classes": lambda: _fill("(/[(/]"),
    "percent-markup": lambda: "unescape('" + _fill("%3C%69") + "')",
    "base64ish": lambda: "'" + _fill("aGVsbG8gd29y") + "'",
    "open-objects": lambda: _fill("{file:{src:["),
    "parens": lambda: "x=" + _fill("(") + "'a'",
    "template": lambda: "`" + _fill("${a}"),
    "iframes": lambda: "document.write('" + "".join(
        f"<iframe src=/f{n}>" for n in range(150_000))[:SIZE] + "')",
}
PAGES = ["huge-packed", "packed-nested", "atob-1000-deep", "crowded-tag", "deep-nesting",
         *NEAR_MISSES]


@get("/hostile/{name:str}", media_type=MediaType.HTML, sync_to_thread=False)
def hostile(name: FromPath[str]) -> str:
    return page(name)


@get("/chain/{n:int}", media_type=MediaType.HTML, sync_to_thread=False)
def chain(request: Request[object, object, State], n: FromPath[int]) -> str:
    """An iframe leading to the next, for ever."""
    request.app.state.hits[f"chain/{n}"] += 1
    return f"<html><body><iframe src='/chain/{n + 1}'></iframe></body></html>"


@get("/tree/{path:path}", media_type=MediaType.HTML, sync_to_thread=False)
def tree(request: Request[object, object, State], path: FromPath[str]) -> str:
    """Ten iframes on every page, each leading to ten more."""
    request.app.state.hits[path] += 1
    frames = "".join(f"<iframe src='/tree{path}/{n}'></iframe>" for n in range(10))
    return f"<html><body>{frames}</body></html>"


@pytest.fixture
def origin(serve: Callable[[Litestar], str]) -> tuple[str, Litestar, EgressPolicy]:
    app = Litestar([hostile, chain, tree], state=State({"hits": Counter()}))
    base = serve(app)
    return base, app, EgressPolicy.from_strings([base.removeprefix("http://")])


async def _extract(base: str, policy: EgressPolicy, path: str) -> list[Found] | ExtractionError:
    async with client(policy) as http:
        ctx = Context(client=http, policy=policy, deadline=60)
        try:
            return await HttpExtractor().extract(f"{base}{path}", ctx)
        except ExtractionError as exc:
            return exc


@pytest.mark.parametrize("name", PAGES)
async def test_a_hostile_page_ends_in_a_typed_error_or_a_bounded_result(
        origin: tuple[str, Litestar, EgressPolicy], name: str) -> None:
    """Whatever the page, the extractor returns at most 8 candidates or raises
    ExtractionError ("page too complex" or "no playlist"), while the event loop keeps
    serving: a heartbeat task ticks while the worker thread scans."""
    base, _, policy = origin
    assert len(page(name).encode()) <= MAX_PAGE
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    beat = asyncio.create_task(heartbeat())
    try:
        outcome = await _extract(base, policy, f"/hostile/{name}")
    finally:
        beat.cancel()
    if isinstance(outcome, ExtractionError):
        assert "page too complex" in outcome.reason or "no playlist" in outcome.reason
        assert not outcome.refused
    else:
        assert 1 <= len(outcome) <= 8
    assert ticks > 0


@pytest.mark.parametrize("name", ["crowded-tag", "deep-nesting"])
async def test_markup_that_makes_parsers_quadratic_is_read_to_its_end(
        origin: tuple[str, Litestar, EgressPolicy], name: str) -> None:
    """60,000 attributes on one tag (hours for lxml's tree builder) or 400,000 nested <div>
    (a tree stops at 2,048 levels): the video after them is still found."""
    base, _, policy = origin
    outcome = await _extract(base, policy, f"/hostile/{name}")
    assert not isinstance(outcome, ExtractionError), outcome
    assert outcome[0].url == NEEDLE


async def test_base64_nested_past_the_depth_cap_is_not_followed_to_the_end(
        origin: tuple[str, Litestar, EgressPolicy]) -> None:
    """25 layers of atob: the scan stops at its depth cap and says it found nothing."""
    base, _, policy = origin
    outcome = await _extract(base, policy, "/hostile/atob-1000-deep")
    assert isinstance(outcome, ExtractionError)
    assert "no playlist" in outcome.reason


async def test_an_endless_iframe_chain_stops_at_the_depth_cap(
        origin: tuple[str, Litestar, EgressPolicy]) -> None:
    """page -> iframe -> iframe ... for ever: four levels below the page are fetched."""
    base, app, policy = origin
    outcome = await _extract(base, policy, "/chain/0")
    assert isinstance(outcome, ExtractionError)
    assert "no playlist" in outcome.reason
    assert sorted(app.state.hits) == [f"chain/{n}" for n in range(MAX_IFRAME_DEPTH + 1)]


async def test_an_endless_iframe_tree_stops_at_the_page_cap(
        origin: tuple[str, Litestar, EgressPolicy]) -> None:
    """Ten iframes a page, ten more in each: at most MAX_PAGES pages are fetched, each once."""
    base, app, policy = origin
    outcome = await _extract(base, policy, "/tree/0")
    assert isinstance(outcome, ExtractionError)
    assert sum(app.state.hits.values()) <= MAX_PAGES
    assert set(app.state.hits.values()) == {1}
