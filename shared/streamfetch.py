"""Streaming fetches for bodies that pass through (the relay's segments), on aiohttp.

The relay moves every segment's bytes from the upstream to its viewers; with httpx that cost
about four times the CPU of aiohttp per 2 MB body (httpcore's pool looks at every pooled
connection for every request, and h11 copies each chunk twice), which made the relay's
uncached pass-through a fifth of nginx's. Playlists and pages stay on httpx
(:mod:`shared.fetch`): small bodies, where none of that shows.

The rules are :func:`shared.fetch.open_response`'s: redirects followed by hand (each hop
checked by the egress policy, headers and cookies kept to their origin), a 2xx answer or a
:class:`FetchError` with the status, the body decoded in bounded steps. The egress policy is
applied where aiohttp connects: its resolver is the policy's (every address checked after DNS,
no second lookup), and a host that is an address, which aiohttp connects to without asking a
resolver, is checked before each hop.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Final

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult

from shared.egress import EgressPolicy
from shared.fetch import (
    REDIRECTS,
    FetchError,
    FetchTimeoutError,
    decode_stream,
    hop_headers,
    origin,
)
from shared.identity import BROWSER_USER_AGENT

#: Identity first: segments are compressed already (and a compressed one is decoded anyway).
IDENTITY: Final = "identity"


class PolicyResolver(AbstractResolver):
    """aiohttp's name resolution through the egress policy: only allowed addresses, checked."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        addresses = await self.policy.resolve(host, port)
        return [ResolveResult(
            hostname=host, host=address, port=port,
            family=socket.AF_INET6 if ":" in address else socket.AF_INET,
            proto=0, flags=socket.AI_NUMERICHOST) for address in addresses]

    async def close(self) -> None:
        return None


class Opened:
    """A 2xx answer, open: its headers, and its body read as it arrives (decoded)."""

    def __init__(self, response: aiohttp.ClientResponse, url: httpx.URL) -> None:
        self.response = response
        self.url = url
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    def chunks(self) -> AsyncIterator[bytes]:
        return decode_stream(self.headers.get("content-encoding", ""), self._raw())

    async def _raw(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.response.content.iter_any():
                yield chunk
        except TimeoutError as exc:
            raise FetchTimeoutError("upstream stopped sending") from exc
        except aiohttp.ClientError as exc:
            raise FetchError(f"{type(exc).__name__}: {exc}") from exc

    async def __aenter__(self) -> Opened:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, value: BaseException | None,
                        traceback: TracebackType | None) -> None:
        if value is None and self.response.content.at_eof():
            self.response.release()  # read to the end: the connection goes back to the pool
        else:
            self.response.close()


class StreamClient:
    """One pooled aiohttp session under the egress policy (create it inside the event loop)."""

    def __init__(self, policy: EgressPolicy, *, connect_timeout: float = 10.0,
                 read_timeout: float = 10.0, limit: int = 200,
                 user_agent: str = BROWSER_USER_AGENT) -> None:
        self.policy = policy
        self.user_agent = user_agent
        connector = aiohttp.TCPConnector(resolver=PolicyResolver(policy), limit=limit,
                                         limit_per_host=0, ttl_dns_cache=0, use_dns_cache=False,
                                         keepalive_timeout=30)
        self.session = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(sock_connect=connect_timeout, sock_read=read_timeout),
            skip_auto_headers=("User-Agent", "Accept-Encoding"), trust_env=False,
            raise_for_status=False)

    async def open(self, url: httpx.URL, *, headers: Mapping[str, str],
                   cookies: Mapping[str, str], max_redirects: int = 5,
                   accept_encoding: str = IDENTITY) -> Opened:
        """Follow redirects to a 2xx answer and return it open (close it: ``async with``).
        Raises :class:`FetchError` (with the status) for any other, :class:`FetchTimeoutError`
        when a time cap fires, :class:`EgressDeniedError` when the policy refuses a hop."""
        first = origin(url)
        jar: dict[str, str] = {}
        for _ in range(max_redirects + 1):
            self.policy.check_url(url)
            _check_literal(self.policy, url)
            send = hop_headers(url, first, headers, {**cookies, **jar}, accept_encoding)
            if not any(name.lower() == "user-agent" for name in send):
                send["User-Agent"] = self.user_agent
            try:
                response = await self.session.get(str(url), headers=send, allow_redirects=False)
            except TimeoutError as exc:
                raise FetchTimeoutError("upstream did not answer in time") from exc
            except aiohttp.ClientConnectorError as exc:  # (the resolver's EgressDeniedError
                # is no OSError: aiohttp lets it through as it is)
                raise FetchError(f"cannot connect: {exc.os_error}") from exc
            except aiohttp.ClientError as exc:
                raise FetchError(f"{type(exc).__name__}: {exc}") from exc
            jar.update({name: morsel.value for name, morsel in response.cookies.items()})
            status = response.status
            if status in REDIRECTS and "location" in response.headers:
                response.release()
                url = url.join(response.headers["location"])
                continue
            if not 200 <= status < 300:
                response.release()
                raise FetchError(f"HTTP {status}", status=status)
            return Opened(response, url)
        raise FetchError(f"more than {max_redirects} redirects")

    async def close(self) -> None:
        await self.session.close()


def _check_literal(policy: EgressPolicy, url: httpx.URL) -> None:
    """aiohttp connects to an address host without a resolver: the policy checks it here."""
    try:
        address = ipaddress.ip_address(url.host)
    except ValueError:
        return
    policy.check_address(url.host, address, url.port or (443 if url.scheme == "https" else 80))
