"""Extractor fixtures: the demo origin on loopback, an egress-guarded client and proxy."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from litestar import Litestar

from services.demo.app import create_app
from services.extractor.extractors.browser import CHROMIUM
from services.extractor.registry import Context
from shared.egress import EgressPolicy, client
from shared.egress_proxy import EgressProxy

TOKEN = "tok-123"
COOKIE = "cookie-abc"


@pytest.fixture(autouse=True)
async def fresh_chromium() -> AsyncIterator[None]:
    """Each test ends with Chromium stopped: a browser belongs to one event loop."""
    yield
    await CHROMIUM.shutdown()


@pytest.fixture
def demo(serve: Callable[[Litestar], str]) -> str:
    """A live demo origin (real clock) on a loopback port; returns its base URL."""
    return serve(create_app(token=TOKEN, cookie=COOKIE))


class Counting:
    """An ASGI wrapper that counts requests per path."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.hits: Counter[str] = Counter()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.hits[scope["path"]] += 1
        await self.app(scope, receive, send)


def allowing(*bases: str) -> EgressPolicy:
    return EgressPolicy.from_strings(b.removeprefix("http://") for b in bases)


@pytest.fixture
async def ctx(demo: str) -> AsyncIterator[Context]:
    """An extraction context whose egress policy allows only the demo origin."""
    policy = allowing(demo)
    async with client(policy) as http, EgressProxy(policy) as proxy:
        yield Context(client=http, policy=policy, deadline=15.0, proxy=proxy.url)
