"""The outbound policy of the relay and the extractor: who Slipstream may fetch from.

http and https only; an address that is not globally routable (private, loopback, link-local,
shared, reserved, multicast, and the same behind IPv4-mapped, 6to4 or NAT64 IPv6 forms) is
refused unless its ``host:port`` is allow-listed. The check happens where it cannot be dodged:
in the network backend, on the address actually connected to, after DNS resolution, for every
connection (so every redirect hop too). A name that resolves to a refused address is refused
whatever it looked like (``127.1``, ``2130706433``, ``localhost.``, ``[::ffff:127.0.0.1]``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

import httpcore
import httpx

from shared.identity import BROWSER_USER_AGENT
from shared.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL: Final = ipaddress.IPv6Network("64:ff9b:1::/48")
SCHEMES: Final = frozenset({"http", "https"})


class EgressDeniedError(httpx.TransportError):
    """A fetch was refused by the egress policy (and nothing was sent)."""


class UnresolvableHostError(EgressDeniedError):
    """The host name does not resolve (nothing to check, nothing to connect to)."""


def embedded_ipv4(ip: IPAddress) -> IPAddress:
    """The IPv4 address hidden in an IPv6 form (mapped, 6to4, NAT64), else ``ip`` itself."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip in _NAT64 or ip in _NAT64_LOCAL:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def is_public(ip: IPAddress) -> bool:
    """Whether ``ip`` is a globally routable unicast address."""
    real = embedded_ipv4(ip)
    return bool(real.is_global) and not real.is_multicast and not real.is_reserved


def _norm_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


@dataclass(frozen=True)
class EgressPolicy:
    """Which destinations may be reached; ``allow`` holds ``host:port`` exceptions."""

    allow: frozenset[tuple[str, int]] = field(default_factory=frozenset)

    @classmethod
    def from_strings(cls, entries: Iterable[str]) -> EgressPolicy:
        """Build from ``["127.0.0.1:8090", "[::1]:8090", "origin.lan:443"]``."""
        allowed = set()
        for entry in entries:
            host, sep, port = entry.rpartition(":")
            if not sep or not port.isdigit() or not host:
                raise ValueError(f"egress allow entry {entry!r} is not host:port")
            allowed.add((_norm_host(host), int(port)))
        return cls(frozenset(allowed))

    def allows(self, host: str, port: int) -> bool:
        return (_norm_host(host), port) in self.allow

    def check_url(self, url: httpx.URL | str) -> httpx.URL:
        """Refuse what no connection check can catch: other schemes, user info, no host."""
        u = httpx.URL(url) if isinstance(url, str) else url
        if u.scheme not in SCHEMES:
            raise EgressDeniedError(f"scheme {u.scheme or '(none)'!r} is not allowed (http, https)")
        if not u.host:
            raise EgressDeniedError(f"URL {u!s:.80} has no host")
        if u.userinfo:
            raise EgressDeniedError("credentials in URLs are not allowed")
        return u

    def check_address(self, host: str, ip: IPAddress, port: int) -> None:
        """Refuse a non-public address unless the host or the address itself is allow-listed."""
        if is_public(ip) or self.allows(host, port) or self.allows(str(ip), port):
            return
        raise EgressDeniedError(f"{host}:{port} resolves to {ip}, which is not a public address "
                                "(allow it in [egress] allow if this is intended)")

    async def resolve(self, host: str, port: int) -> list[str]:
        """Addresses of ``host`` that may be connected to; raise if any is refused."""
        host = _norm_host(host)
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            self.check_address(host, literal, port)
            return [str(literal)]
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise UnresolvableHostError(f"cannot resolve {host}: {exc.strerror}") from exc
        addresses = []
        for info in infos:
            ip = ipaddress.ip_address(info[4][0])
            # Every address must pass: a name with one public and one private address is refused.
            self.check_address(host, ip, port)
            addresses.append(str(ip))
        return list(dict.fromkeys(addresses))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to addresses the policy allows."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109
                          local_address: str | None = None,
                          socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        addresses = await self.policy.resolve(host, port)
        last: Exception | None = None
        for address in addresses:
            try:
                # Connect to the checked address itself (no second lookup: no DNS rebinding);
                # TLS still verifies the certificate against the host name.
                return await self._inner.connect_tcp(address, port, timeout=timeout,
                                                     local_address=local_address,
                                                     socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last or httpcore.ConnectError(f"no address for {host}")

    async def connect_unix_socket(self, path: str, timeout: float | None = None,  # noqa: ASYNC109
                                  socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise EgressDeniedError("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(policy: EgressPolicy, **kwargs: typing.Any) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose every connection goes through :class:`GuardedBackend`."""
    transport = httpx.AsyncHTTPTransport(**kwargs)
    pool = transport._pool
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=pool._ssl_context, max_connections=pool._max_connections,
        max_keepalive_connections=pool._max_keepalive_connections,
        keepalive_expiry=pool._keepalive_expiry, http1=pool._http1, http2=pool._http2,
        retries=pool._retries, network_backend=GuardedBackend(policy))
    return transport


def client(policy: EgressPolicy, *, timeout: httpx.Timeout | float = 10.0,
           limits: httpx.Limits | None = None, user_agent: str | None = None) -> httpx.AsyncClient:
    """An httpx client under the policy. Redirects are not followed here: see ``shared.fetch``.
    It presents a browser's User-Agent (never httpx's) unless a request sets its own."""
    headers = {"User-Agent": user_agent or BROWSER_USER_AGENT}
    return httpx.AsyncClient(
        transport=guarded_transport(policy, limits=limits or httpx.Limits(
            max_connections=200, max_keepalive_connections=50, keepalive_expiry=30)),
        timeout=timeout, follow_redirects=False, headers=headers, trust_env=False)


def policy_for(settings: Settings) -> EgressPolicy:
    """The policy of the relay and the extractor: ``[egress] allow``, plus the demo origin when
    the demo sources are on (``slipstream up`` with the demo)."""
    allow = list(settings.egress.allow)
    if settings.extractor.demo_sources:
        allow.append(httpx.URL(settings.extractor.demo_url).netloc.decode())
    return EgressPolicy.from_strings(allow)
