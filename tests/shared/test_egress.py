"""The egress policy and bounded fetches, against real HTTP servers on loopback."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
from collections.abc import AsyncIterator, Callable

import pytest
from litestar import Litestar, Request, Response, get
from litestar.params import FromPath
from litestar.response import Redirect, Stream

from shared.egress import EgressDeniedError, EgressPolicy, client, is_public
from shared.fetch import FetchError, TooLargeError, fetch

NOT_PUBLIC = ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0",
              "100.64.0.1", "224.0.0.1", "::1", "::", "fe80::1", "fc00::1", "::ffff:127.0.0.1",
              "::ffff:169.254.169.254", "64:ff9b::7f00:1", "2002:7f00:1::", "255.255.255.255"]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_non_public_addresses_in_every_disguise_are_refused(address: str) -> None:
    """Private, loopback, link-local and mapped forms are not public."""
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    """Globally routable unicast addresses are allowed."""
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("host", ["127.1", "2130706433", "localhost", "localhost.", "[::1]",
                                  "0x7f.0.0.1", "[::ffff:127.0.0.1]"])
async def test_loopback_spellings_are_refused_after_resolution(host: str) -> None:
    """However the loopback host is written, what it resolves to is what counts."""
    with pytest.raises(EgressDeniedError):
        await EgressPolicy().resolve(host, 80)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/x", "gopher://h/",
                                 "http://user:pw@example.org/", "data:text/plain,hi"])
def test_only_plain_http_and_https_urls(url: str) -> None:
    """Other schemes and URLs with credentials are refused before any connection."""
    with pytest.raises(EgressDeniedError):
        EgressPolicy().check_url(url)


class Origin:
    """A loopback origin that records what it was asked."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, dict[str, str]]] = []

    def app(self) -> Litestar:
        hits = self.hits

        @get("/{path:path}", sync_to_thread=False)
        def anything(request: Request[object, object, object],
                 path: FromPath[str]) -> Response[bytes] | Redirect | Stream:
            hits.append((path, dict(request.headers)))
            if path.startswith("/redirect"):
                return Redirect(request.query_params["to"], status_code=302)
            if path == "/setcookie":
                r = Redirect("/ok", status_code=302)
                r.set_cookie("s", "v1")
                return r
            if path == "/big":
                return Response(b"x" * 2_000_000)
            if path == "/gzip":
                return Response(gzip.compress(b"\0" * 20_000_000),
                                headers={"Content-Encoding": "gzip"})
            if path in ("/drip", "/endless"):
                async def body() -> AsyncIterator[bytes]:
                    while True:
                        yield b"x" * (1 if path == "/drip" else 65536)
                        await asyncio.sleep(1 if path == "/drip" else 0)
                return Stream(body())
            return Response(b"ok")

        return Litestar([anything], openapi_config=None, logging_config=None)


@pytest.fixture
def two_origins(serve: Callable[[Litestar], str]) -> tuple[Origin, str, Origin, str]:
    a, b = Origin(), Origin()
    return a, serve(a.app()), b, serve(b.app())


def allow(*bases: str) -> EgressPolicy:
    return EgressPolicy.from_strings(base.removeprefix("http://") for base in bases)


async def test_a_loopback_origin_outside_the_allow_list_gets_zero_requests(
        two_origins: tuple[Origin, str, Origin, str]) -> None:
    """Refused before connecting: the server on that port records nothing."""
    a, base_a, _, _ = two_origins
    policy = EgressPolicy()
    async with client(policy) as http:
        with pytest.raises(FetchError, match="egress policy"):
            await fetch(http, f"{base_a}/ok", policy=policy)
    assert a.hits == []


async def test_every_redirect_hop_passes_the_policy(two_origins: tuple[Origin, str, Origin, str]) -> None:
    """An allowed origin redirecting to a loopback port not allowed is refused at that hop."""
    a, base_a, b, base_b = two_origins
    policy = allow(base_a)
    async with client(policy) as http:
        ok = await fetch(http, f"{base_a}/ok", policy=policy)
        assert ok.body == b"ok"
        with pytest.raises(FetchError, match="egress policy"):
            await fetch(http, f"{base_a}/redirect?to={base_b}/ok", policy=policy)
    assert b.hits == []
    assert [p for p, _ in a.hits] == ["/ok", "/redirect"]


async def test_credentials_do_not_follow_a_redirect_to_another_origin(
        two_origins: tuple[Origin, str, Origin, str]) -> None:
    """Referer, cookies and tokens go to the first origin only; same-origin hops keep them."""
    a, base_a, b, base_b = two_origins
    policy = allow(base_a, base_b)
    secret = {"Referer": "https://page.test/embed", "X-Token": "t0ken"}
    async with client(policy) as http:
        await fetch(http, f"{base_a}/redirect?to=/ok", policy=policy, headers=secret,
                    cookies={"sid": "c00kie"})
        await fetch(http, f"{base_a}/redirect?to={base_b}/ok", policy=policy, headers=secret,
                    cookies={"sid": "c00kie"})
    same = a.hits[1][1]
    assert same["referer"] == "https://page.test/embed"
    assert same["cookie"] == "sid=c00kie"
    other = b.hits[0][1]
    assert "referer" not in other
    assert "x-token" not in other
    assert "cookie" not in other


async def test_cookies_set_on_the_way_are_sent_on_and_reported(
        two_origins: tuple[Origin, str, Origin, str]) -> None:
    """A cookie set by a redirect is sent to the next same-origin hop and kept in the result."""
    a, base_a, _, _ = two_origins
    policy = allow(base_a)
    async with client(policy) as http:
        got = await fetch(http, f"{base_a}/setcookie", policy=policy)
    assert got.cookies == {"s": "v1"}
    assert a.hits[1][1]["cookie"] == "s=v1"


async def test_bodies_are_capped_in_size_and_time(two_origins: tuple[Origin, str, Origin, str]) -> None:
    """Too big, a gzip bomb, an endless body and a slow drip all fail within their caps."""
    _, base_a, _, _ = two_origins
    policy = allow(base_a)
    async with client(policy) as http:
        with pytest.raises(TooLargeError):
            await fetch(http, f"{base_a}/big", policy=policy, max_bytes=1_000_000)
        with pytest.raises(TooLargeError):
            await fetch(http, f"{base_a}/gzip", policy=policy, max_bytes=1_000_000)
        with pytest.raises(TooLargeError):
            await fetch(http, f"{base_a}/endless", policy=policy, max_bytes=1_000_000)
        with pytest.raises(FetchError, match=r"within 1\.5 s"):
            await fetch(http, f"{base_a}/drip", policy=policy, deadline=1.5)
