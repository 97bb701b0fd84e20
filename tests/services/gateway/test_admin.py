"""The admin API on a real nats-server: its own token, sources changed in the bucket with an
event each, and no header or cookie value ever sent back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from services.gateway.app import create_app
from shared import topology
from shared.codec import decode
from shared.settings import load_settings
from shared.sourceadmin import read_all
from shared.sources import Action, SourceChanged
from tests.conftest import until_ready

VIEWER = "viewer-token-0123456789"
ADMIN = "admin-token-ops-0123456789"
SECRETS = ("header-secret-42", "cookie-secret-77", "second-secret-99")
NEW = {"id": "site-a", "url": "https://site-a.test/live/{event}", "name": "Site A",
       "headers": {"X-Key": SECRETS[0]}, "cookies": {"sid": SECRETS[1]}, "priority": 5}


@pytest.fixture
async def gateway(nats_url: str, serve: Callable[[Any], str], tmp_path: Path) -> str:
    settings = load_settings(env={"SLIPSTREAM_DATA_DIR": str(tmp_path),
                                  "SLIPSTREAM_GATEWAY_TOKEN": VIEWER,
                                  "SLIPSTREAM_GATEWAY_ADMIN_TOKENS": json.dumps({"ops": ADMIN})})
    base = serve(create_app(settings, [nats_url]))
    await until_ready(base)
    return base


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_the_admin_api_refuses_no_token_a_wrong_one_and_the_viewer_token(gateway: str) -> None:
    """401 without a token, with a wrong one, and with the viewers' token (header or query)."""
    async with httpx.AsyncClient(base_url=gateway) as http:
        for headers, params in (({}, {}), (bearer("wrong-token-0123456789"), {}),
                                (bearer(VIEWER), {}), ({}, {"token": VIEWER}),
                                ({}, {"token": ADMIN})):
            for method, path in (("GET", "/api/admin/sources"), ("POST", "/api/admin/sources"),
                                 ("DELETE", "/api/admin/sources/site-a")):
                r = await http.request(method, path, headers=headers, params=params, json=NEW)
                assert r.status_code == 401, (method, path, headers, params)
        ok = await http.get("/api/admin/whoami", headers=bearer(ADMIN))
    assert ok.status_code == 200
    assert ok.json() == {"name": "ops"}


async def test_changes_go_to_the_bucket_and_out_as_events_without_secret_values(
        gateway: str, nc: Client) -> None:
    """Add, edit (a header kept by null, one added), disable, remove: each is in the bucket and
    is an event naming the admin token; no response or event holds a header or cookie value."""
    js = nc.jetstream()
    seen: list[bytes] = []

    async def keep(msg: Msg) -> None:
        seen.append(msg.data)

    sub = await nc.subscribe("sources.changes.>", cb=keep)
    async with httpx.AsyncClient(base_url=gateway, headers=bearer(ADMIN)) as http:
        added = await http.post("/api/admin/sources", json=NEW)
        assert added.status_code == 201, added.text
        listed = await _until_listed(http)
        edited = await http.patch("/api/admin/sources/site-a", json={
            "headers": {"X-Key": None, "X-Two": SECRETS[2]}, "name": "Site A2"})
        assert edited.status_code == 200, edited.text
        assert edited.json()["changed"] == ["name", "headers.X-Two"]
        records = await read_all(await topology.sources_kv(js))
        assert records["site-a"][0].headers == {"X-Key": SECRETS[0], "X-Two": SECRETS[2]}
        assert records["site-a"][0].updated_by == "admin:ops"
        disabled = await http.post("/api/admin/sources/site-a/disable")
        assert disabled.json()["action"] == "disabled"
        removed = await http.delete("/api/admin/sources/site-a")
        assert removed.status_code == 200
        gone = await http.delete("/api/admin/sources/site-a")
        bodies = [added.text, listed, edited.text, disabled.text, removed.text]
    await sub.unsubscribe()
    assert gone.status_code == 404
    events = [decode(raw, SourceChanged) for raw in seen]
    assert [e.action for e in events] == [Action.ADDED, Action.EDITED, Action.DISABLED,
                                          Action.REMOVED]
    assert {e.who for e in events} == {"admin:ops"}
    stored = await js.stream_info(topology.SOURCE_CHANGES_STREAM)
    assert stored.state.messages == 4
    for text in [*bodies, *(raw.decode() for raw in seen)]:
        for secret in SECRETS:
            assert secret not in text


async def test_bad_sources_are_refused_readably(gateway: str) -> None:
    """A bad URL template, an unknown extractor and a duplicate id are 400, 400 and 409."""
    async with httpx.AsyncClient(base_url=gateway, headers=bearer(ADMIN)) as http:
        bad_url = await http.post("/api/admin/sources", json={**NEW, "url": "https://x.test/{lap}"})
        bad_ext = await http.post("/api/admin/sources", json={**NEW, "extractor": "curl"})
        first = await http.post("/api/admin/sources", json=NEW)
        again = await http.post("/api/admin/sources", json=NEW)
    assert bad_url.status_code == 400
    assert "unknown fields ['lap']" in bad_url.text
    assert bad_ext.status_code == 400
    assert "unknown extractor 'curl'" in bad_ext.text
    assert first.status_code == 201
    assert again.status_code == 409
    assert "exists already" in again.text


async def _until_listed(http: httpx.AsyncClient) -> str:
    for _ in range(50):
        r = await http.get("/api/admin/sources")
        rows = r.json()
        if rows:
            assert rows[0]["source"]["header_names"] == ["X-Key"]
            assert rows[0]["source"]["cookie_names"] == ["sid"]
            assert rows[0]["stats"]["streams_now"] == 0
            return r.text
        await asyncio.sleep(0.1)
    raise AssertionError("the added source was never listed")
