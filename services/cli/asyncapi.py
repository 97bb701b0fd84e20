"""Writes ``shared/asyncapi.json``: the AsyncAPI 3.0 document of every NATS subject Slipstream
uses and its payload.

FastStream generates the document from the services' real brokers (the scheduler's and the
extractor's subscribers, with their subjects and descriptions) and from a documentation broker
that declares what is published and watched. FastStream derives payload schemas from pydantic
types, and the contracts are msgspec Structs, so the payloads are then filled in from
``msgspec.json.schema_components`` of the ``shared`` Structs: the contracts stay the one source.

    slipstream asyncapi            print the document
    slipstream asyncapi --write    write shared/asyncapi.json
    slipstream asyncapi --check    exit 1 if shared/asyncapi.json is not what the code says

The test suite runs the check, so the document cannot drift from the code.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import msgspec
from faststream.nats import NatsBroker
from faststream.specification import AsyncAPI

import shared
from services.extractor.app import ExtractorApp
from services.scheduler.app import SchedulerApp
from shared import subjects, topology
from shared.channels import ChannelSwitch
from shared.control import ReresolveReply, ReresolveRequest
from shared.feed import SessionChanged, StreamChanged, StreamRemoved
from shared.jobs import DeadLetter, ExtractJob
from shared.sessions import SessionEvent
from shared.settings import load_settings
from shared.sources import CheckReply, CheckRequest, SourceChanged, SourceRecord, SourceStats
from shared.streams import StreamRecord

OUT = Path(shared.__file__).resolve().parent / "asyncapi.json"

STREAMS_KV = f"{subjects.kv_subjects(topology.STREAMS_BUCKET)}>"
SESSIONS_KV = f"{subjects.kv_subjects(topology.SESSIONS_BUCKET)}>"
SOURCES_KV = f"{subjects.kv_subjects(topology.SOURCES_BUCKET)}>"
SOURCE_STATS_KV = f"{subjects.kv_subjects(topology.SOURCE_STATS_BUCKET)}>"


PublicStreamEvent = StreamChanged | StreamRemoved


class ResyncRequest(msgspec.Struct, frozen=True):
    """Any message (the body is ignored): the scheduler re-reads the calendar now."""


#: The payload of each subject (address) in the document.
PAYLOADS: dict[str, Any] = {
    subjects.SESSIONS_ALL: SessionEvent,
    subjects.EXTRACT_JOBS_ALL: ExtractJob,
    subjects.DEADLETTER_ALL: DeadLetter,
    subjects.CHANNEL_SWITCHES_ALL: ChannelSwitch,
    STREAMS_KV: StreamRecord,
    SESSIONS_KV: SessionEvent,
    subjects.SCHEDULER_RESYNC: ResyncRequest,
    subjects.EXTRACTOR_RERESOLVE: ReresolveRequest,
    subjects.PUBLIC_STREAMS_ALL: PublicStreamEvent,
    subjects.PUBLIC_SESSIONS_ALL: SessionChanged,
    subjects.EXTRACTOR_CHECK: CheckRequest,
    subjects.SOURCE_CHANGES_ALL: SourceChanged,
    SOURCES_KV: SourceRecord,
    SOURCE_STATS_KV: SourceStats,
}
#: The channels other programs may follow (the NATS user ``consumer`` may read these only);
#: every other channel is internal to Slipstream.
PUBLIC_CHANNELS: frozenset[str] = frozenset({subjects.PUBLIC_STREAMS_ALL,
                                             subjects.PUBLIC_SESSIONS_ALL})
#: Replies to requests: no subject of their own, but their schemas are in the document.
REPLIES: list[Any] = [ReresolveReply, CheckReply]


def documentation_broker() -> NatsBroker:
    """What is published and watched, beyond the services' own subscribers."""
    broker = NatsBroker("nats://localhost:4222", description="Slipstream's NATS (JetStream)")
    broker.publisher(
        subjects.SESSIONS_ALL, title="session-events",
        description="The scheduler publishes each session's life cycle on the SESSIONS stream: "
        "sessions.<season>.<event>.<kind>.<phase>, phases scheduled, upcoming, live, ended, "
        "rescheduled, cancelled; Nats-Msg-Id is deterministic per (session, phase, start).")
    broker.publisher(
        subjects.EXTRACT_JOBS_ALL, title="extract-jobs",
        description="The extractor queues one keep-fresh job per session and source on the JOBS "
        "work queue: jobs.extract.<season>.<event>.<kind>.<source-id>.")
    broker.publisher(
        subjects.DEADLETTER_ALL, title="dead-letters",
        description="Messages a consumer gave up on, with the reason, on the DEADLETTER stream: "
        "deadletter.<consumer>.<season>.<event>.<kind>, or deadletter.<consumer>.unparsed when "
        "the message's subject named no session.")
    broker.publisher(
        subjects.CHANNEL_SWITCHES_ALL, title="channel-switches",
        description="The relay publishes each stream a channel puts on air on the CHANNELS "
        "stream: channels.<season>.<event>.<kind>.switched for a session's channel, "
        "channels.live-now.switched for the channel that follows the session live now; "
        "from_stream/to_stream null mean nothing/the off-air slate; reason start, dead, stalled, "
        "errors, ended, removed, degraded or session. The last message of a channel's subject "
        "says what it has on air (while it is watched).")
    broker.publisher(
        STREAMS_KV, title="stream-records",
        description="KV bucket 'streams', key <season>.<event>.<kind>.<stream-id>: the "
        "extractor writes resolved streams (private: upstream URL, headers, cookies); the "
        "relay and the gateway watch it. A delete means the stream is gone; a purge (never "
        "done by Slipstream) means it was lost and is being re-resolved.")
    broker.publisher(
        subjects.PUBLIC_STREAMS_ALL, title="public-stream-events",
        description="PUBLIC: the interface other programs subscribe to. "
        "public.streams.<season>.<event>.<kind>.<stream-id> on the PUBLIC stream (the last event "
        "of each subject kept): StreamChanged (the public view: title, source, health, a fixed "
        "health phrase, qualities; never an upstream URL, header, cookie or token; playback_url "
        "empty, ask the gateway's /api/streams for a signed one) or StreamRemoved. Announced by "
        "the extractor for every change of the streams bucket; Nats-Msg-Id <key>@<revision>. "
        "Read with the NATS user 'consumer' (inbox prefix _INBOX.consumer).")
    broker.publisher(
        subjects.PUBLIC_SESSIONS_ALL, title="public-session-events",
        description="PUBLIC: the interface other programs subscribe to. "
        "public.sessions.<season>.<event>.<kind> on the PUBLIC stream: SessionChanged (the "
        "session, its phase and since when) for every change of the sessions bucket, announced "
        "by the scheduler. Read with the NATS user 'consumer'.")
    broker.publisher(
        SESSIONS_KV, title="session-states",
        description="KV bucket 'sessions', key <season>.<event>.<kind>: the last event of each "
        "session, written by the scheduler, watched by the gateway.")
    broker.publisher(
        subjects.SOURCE_CHANGES_ALL, title="source-changes",
        description="Every change to a source, on the SOURCE_CHANGES stream (kept for audit): "
        "sources.changes.<source-id>, published by whoever made it (the gateway's admin API, "
        "`slipstream sources`, an extractor seeding from the settings file or restoring a lost "
        "bucket). `who` is the admin token's name, the CLI's user, `file` or `restore`; "
        "`changed` names the fields (headers.<name> for a header); never a header or cookie "
        "value.")
    broker.publisher(
        SOURCES_KV, title="source-records",
        description="KV bucket 'sources', key <source-id>: the definition of each source "
        "(private: header and cookie values), the truth every extractor replica follows; "
        "seeded from the settings file, changed by the admin API and `slipstream sources`.")
    broker.publisher(
        SOURCE_STATS_KV, title="source-stats",
        description="KV bucket 'source-stats', key <source-id>: resolutions tried and "
        "succeeded, the last extractor that worked, the time it took, the last error "
        "(redacted); written by the extractors, read by the admin page and `sources stats`.")
    return broker


def generate() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as data:
        settings = load_settings(env={"SLIPSTREAM_DATA_DIR": data})
        servers = ["nats://localhost:4222"]
        brokers = [SchedulerApp(settings, servers).broker, ExtractorApp(settings, servers).broker,
                   documentation_broker()]
        spec = AsyncAPI(*brokers, title="Slipstream events", version="0.1.0",
                        description="Every NATS subject Slipstream uses, and its payload. "
                        "Payloads are JSON encodings of the msgspec Structs in shared/.",
                        schema_version="3.0.0").to_specification()
    doc: dict[str, Any] = json.loads(spec.to_json())
    doc["servers"] = {"nats": {"host": "localhost:4222", "protocol": "nats",
                               "description": "NATS with JetStream (slipstream up embeds one)"}}
    for channel in doc["channels"].values():
        channel["servers"] = [{"$ref": "#/servers/nats"}]
        # x-slipstream-public marks what other programs may subscribe to; the rest is internal.
        channel["x-slipstream-public"] = channel["address"] in PUBLIC_CHANNELS
    _, components = msgspec.json.schema_components(
        [*PAYLOADS.values(), *REPLIES], ref_template="#/components/schemas/{name}")
    doc["components"]["schemas"] = components
    addresses = {}  # component message name -> the address of its channel
    for channel in doc["channels"].values():
        for ref in channel["messages"].values():
            name = ref["$ref"].rsplit("/", 1)[1].replace("%3E", ">")
            addresses[name] = channel["address"]
    for name, message in doc["components"]["messages"].items():
        address = addresses[name]
        payload = PAYLOADS.get(address)
        if payload is None:
            raise SystemExit(f"asyncapi: no payload type for subject {address!r}; add it to PAYLOADS")
        schema = msgspec.json.schema(payload, ref_template="#/components/schemas/{name}")
        message["payload"] = {k: v for k, v in schema.items() if k != "$defs"}
        message.pop("correlationId", None)
    return doc


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def main(mode: str = "print") -> int:
    """``print`` the document, ``write`` it to shared/asyncapi.json, or ``check`` that file."""
    text = render(generate())
    if mode == "check":
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run `slipstream asyncapi --write`", file=sys.stderr)
            return 1
        return 0
    if mode == "write":
        OUT.write_text(text)
        print(f"wrote {OUT}")
        return 0
    sys.stdout.write(text)
    return 0
