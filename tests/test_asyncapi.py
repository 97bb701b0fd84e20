"""The AsyncAPI document matches the code (regenerated and compared), documents every subject
with a payload schema, and the gateway serves it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx

from services.gateway.app import create_app
from shared import subjects
from shared.codec import encode
from shared.sessions import Live, Session, SessionKind
from shared.settings import load_settings
from tests.procs import ROOT

DOC = ROOT / "shared" / "asyncapi.json"


def test_the_committed_document_is_what_the_code_generates() -> None:
    done = subprocess.run([sys.executable, "-m", "services.cli", "asyncapi", "--check"],
                          capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_every_subject_is_documented_with_a_payload_schema() -> None:
    doc = json.loads(DOC.read_text())
    assert doc["asyncapi"] == "3.0.0"
    addresses = {c["address"] for c in doc["channels"].values()}
    assert {subjects.SESSIONS_ALL, subjects.EXTRACT_JOBS_ALL, subjects.DEADLETTER_ALL,
            subjects.SCHEDULER_RESYNC, subjects.EXTRACTOR_RERESOLVE, subjects.CHANNEL_SWITCHES_ALL,
            "$KV.streams.>",
            "$KV.sessions.>"} <= addresses
    schemas = doc["components"]["schemas"]
    assert {"ReresolveRequest", "ReresolveReply"} <= set(schemas)  # the reply is documented too
    for message in doc["components"]["messages"].values():
        payload = json.dumps(message["payload"])
        assert "EmptyPayload" not in payload
        for ref in [r for r in payload.split('"') if r.startswith("#/components/schemas/")]:
            assert ref.rsplit("/", 1)[1] in schemas
    # the documented session event schema accepts a real event (the discriminator is "phase")
    race = Session(key="2026.monaco.race", season=2026, round=8, event="Monaco",
                   kind=SessionKind.RACE, name="Race")
    event = json.loads(encode(Live(session=race, at=datetime.now(UTC))))
    assert event["phase"] in schemas["Live"]["properties"]["phase"]["enum"]
    assert set(event) <= set(schemas["Live"]["properties"])


async def test_the_gateway_serves_the_document(nats_url: str, serve: Callable[..., str],
                                               tmp_path: Path) -> None:
    base = serve(create_app(load_settings(env={"SLIPSTREAM_DATA_DIR": str(tmp_path)}), [nats_url]))
    async with httpx.AsyncClient(base_url=base) as http:
        got = await http.get("/asyncapi.json")
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("application/json")
    assert got.json() == json.loads(DOC.read_text())


def test_the_public_channels_are_marked_and_carry_no_private_field() -> None:
    """Exactly the public.streams and public.sessions channels are marked public, and no schema
    they reach has a field that holds a secret in the private record."""
    doc = json.loads(DOC.read_text())
    public = {c["address"] for c in doc["channels"].values() if c["x-slipstream-public"]}
    assert public == {subjects.PUBLIC_STREAMS_ALL, subjects.PUBLIC_SESSIONS_ALL}
    schemas = doc["components"]["schemas"]

    def reachable(node: object, seen: set[str]) -> set[str]:
        text = json.dumps(node)
        for ref in [r for r in text.split('"') if r.startswith("#/components/schemas/")]:
            name = ref.rsplit("/", 1)[1]
            if name not in seen:
                seen.add(name)
                reachable(schemas[name], seen)
        return seen

    messages = doc["components"]["messages"]
    for channel in doc["channels"].values():
        if not channel["x-slipstream-public"]:
            continue
        for ref in channel["messages"].values():
            name = ref["$ref"].rsplit("/", 1)[1]
            reached = reachable(messages[name]["payload"], set())
            assert reached & {"StreamView", "SessionStatus", "SessionView"}
            assert "StreamRecord" not in reached
            assert "Variant" not in reached
            for schema in reached:
                fields = set(schemas[schema].get("properties", {}))
                assert not fields & {"upstream_url", "headers", "cookies", "uri"}, schema
