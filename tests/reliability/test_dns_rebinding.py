"""DNS rebinding: a name that resolves to an allowed address first and a forbidden one after.
The egress policy connects to the address it checked, without a second lookup, so the server
behind the forbidden address records zero requests.

No DNS server can be run here without changing the machine's resolver, so the test's event
loop answers for one made-up name (``rebind.test``) and counts the lookups; the connections,
the servers and the policy are real. The allowed and forbidden servers listen on the same port
of 127.0.0.1 and 127.0.0.2, and only 127.0.0.1 is in the allow list."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from shared.egress import EgressPolicy, client
from shared.fetch import FetchError, fetch
from shared.http import bind
from shared.http import server as http_server
from tests.shared.test_egress import Origin


@pytest.fixture
def two_addresses() -> Iterator[tuple[Origin, Origin, int]]:
    """Origin A on 127.0.0.1:P (allowed) and origin B on 127.0.0.2:P (not allowed)."""
    allowed, forbidden = Origin(), Origin()
    first = bind("127.0.0.1", 0, "test.port")
    port = first.getsockname()[1]
    second = bind("127.0.0.2", port, "test.port")
    servers = []
    for origin, sock in ((allowed, first), (forbidden, second)):
        srv = http_server(origin.app(), log_level="warning")
        threading.Thread(target=lambda s=srv, k=sock: asyncio.run(s.serve([k])), daemon=True).start()
        servers.append(srv)
    deadline = time.monotonic() + 10
    while not all(s.started for s in servers) and time.monotonic() < deadline:
        time.sleep(0.01)
    yield allowed, forbidden, port
    for srv in servers:
        srv.should_exit = True


def rebinding(answers: list[str], lookups: list[str]) -> Any:
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "rebind.test":
            return await real(host, port, *args, **kwargs)
        address = answers[min(len(lookups), len(answers) - 1)]
        lookups.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port)))]

    return getaddrinfo


async def test_the_checked_address_is_the_one_connected_to(
        two_addresses: tuple[Origin, Origin, int], monkeypatch: pytest.MonkeyPatch) -> None:
    """One lookup per connection, checked, and connected to as is: the rebinding answer that
    a second lookup would get is never used; a later connection that gets it is refused."""
    allowed, forbidden, port = two_addresses
    lookups: list[str] = []
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo",
                        rebinding(["127.0.0.1", "127.0.0.2"], lookups))
    policy = EgressPolicy.from_strings([f"127.0.0.1:{port}"])
    async with client(policy) as http:
        got = await fetch(http, f"http://rebind.test:{port}/x", policy=policy)
    assert got.body == b"ok"
    assert lookups == ["127.0.0.1"]  # nothing looked the name up again to connect
    async with client(policy) as http:  # a new connection: a new lookup, now rebound
        with pytest.raises(FetchError, match="egress"):
            await fetch(http, f"http://rebind.test:{port}/y", policy=policy)
    assert lookups == ["127.0.0.1", "127.0.0.2"]
    assert [path for path, _ in allowed.hits] == ["/x"]
    assert forbidden.hits == []
