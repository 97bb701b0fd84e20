"""The JetStream topology, declared once and applied idempotently by every service at start.

Streams: ``SESSIONS`` (session life cycle), ``JOBS`` (one keep-fresh job per session and source,
a work queue), ``DEADLETTER`` (jobs that failed for good), ``PUBLIC`` (the public events other
programs follow: the last public view of each stream and session), ``CHANNELS`` (every stream
a channel put on air, for audit; the last message of each channel's subject says what is on
air).
KV buckets: ``streams`` (resolved stream records), ``sessions`` (current phase of each session).
Durable consumers: ``extractor`` on ``SESSIONS`` (fans sessions out into jobs) and
``extract-worker`` on ``JOBS`` (does them), each shared by every extractor replica.

Applying is "create, or update when the declared config differs": a service started against an
older deployment brings the topology to this declaration instead of failing or drifting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError
from nats.js.kv import KeyValue

from shared import logs, subjects
from shared.codec import MAX_PAYLOAD_BYTES

log = logs.get(__name__)

SESSIONS_STREAM: Final = "SESSIONS"
JOBS_STREAM: Final = "JOBS"
DEADLETTER_STREAM: Final = "DEADLETTER"
PUBLIC_STREAM: Final = "PUBLIC"
CHANNELS_STREAM: Final = "CHANNELS"
STREAMS_BUCKET: Final = "streams"
SESSIONS_BUCKET: Final = "sessions"
#: Source definitions (``shared.sources.SourceRecord``), keyed by source id: the truth.
SOURCES_BUCKET: Final = "sources"
#: How each source has been doing (``shared.sources.SourceStats``), keyed by source id.
SOURCE_STATS_BUCKET: Final = "source-stats"
#: Every change to a source (``shared.sources.SourceChanged``), kept for audit.
SOURCE_CHANGES_STREAM: Final = "SOURCE_CHANGES"


def kv_stream(bucket: str) -> str:
    """The name of the JetStream stream behind a KV bucket (``KV_streams``)."""
    return f"KV_{bucket}"


#: The streams behind the buckets (what :func:`missing` names).
STREAMS_BUCKET_STREAM: Final = kv_stream(STREAMS_BUCKET)
SESSIONS_BUCKET_STREAM: Final = kv_stream(SESSIONS_BUCKET)
SOURCES_BUCKET_STREAM: Final = kv_stream(SOURCES_BUCKET)
SOURCE_STATS_BUCKET_STREAM: Final = kv_stream(SOURCE_STATS_BUCKET)
EXTRACTOR_CONSUMER: Final = "extractor"
WORKER_CONSUMER: Final = "extract-worker"

DAY: Final = 24 * 3600.0
#: Dedup window for publishes: a scheduler restarted within it cannot double-publish even
#: before it has read its KV state back.
DUPLICATE_WINDOW: Final = 3600.0

# JetStream API error codes we act on.
_STREAM_NAME_IN_USE: Final = 10058


@dataclass(frozen=True, slots=True)
class Bucket:
    """A KV bucket and the limits of its backing stream."""

    name: str
    description: str
    history: int
    max_value_size: int = MAX_PAYLOAD_BYTES

    @property
    def stream_name(self) -> str:
        return kv_stream(self.name)

    def stream_config(self, replicas: int) -> StreamConfig:
        # Mirrors what nats-py's create_key_value builds, so either can open the bucket.
        return StreamConfig(
            name=self.stream_name,
            description=self.description,
            subjects=[f"{subjects.kv_subjects(self.name)}>"],
            allow_direct=True,
            allow_rollup_hdrs=True,
            allow_msg_ttl=True,
            deny_delete=True,
            discard=DiscardPolicy.NEW,
            duplicate_window=120.0,
            max_consumers=-1,
            max_msg_size=self.max_value_size,
            max_msgs=-1,
            max_msgs_per_subject=self.history,
            num_replicas=replicas,
            storage=StorageType.FILE,
        )


@dataclass(frozen=True, slots=True)
class Consumer:
    """A durable pull consumer that replicas of one service share."""

    stream: str
    config: ConsumerConfig


def _stream(name: str, description: str, subject: str, *, replicas: int, max_age_days: int,
            **limits: Any) -> StreamConfig:
    """A file-backed stream that drops its oldest messages at its limits and keeps
    publishers' message ids for :data:`DUPLICATE_WINDOW`; ``limits`` overrides or adds."""
    return StreamConfig(**{
        "name": name, "description": description, "subjects": [subject],
        "retention": RetentionPolicy.LIMITS, "storage": StorageType.FILE,
        "num_replicas": replicas, "max_age": max_age_days * DAY,
        "max_msg_size": MAX_PAYLOAD_BYTES, "duplicate_window": DUPLICATE_WINDOW,
        "discard": DiscardPolicy.OLD, **limits})


def stream_configs(replicas: int = 1) -> list[StreamConfig]:
    """The message streams of the topology."""
    return [
        _stream(SESSIONS_STREAM, "Session life-cycle events published by the scheduler",
                subjects.SESSIONS_ALL, replicas=replicas, max_age_days=400),
        _stream(PUBLIC_STREAM,
                "Public stream and session events for other programs (no secrets)",
                subjects.PUBLIC_ALL, replicas=replicas, max_age_days=30,
                # The last event of each stream and session: a consumer starting with
                # DeliverPolicy.LAST_PER_SUBJECT gets the current picture, then every change.
                max_msgs_per_subject=1, allow_direct=True),
        _stream(JOBS_STREAM, "Keep-fresh extraction jobs, one per session and source",
                subjects.EXTRACT_JOBS_ALL, replicas=replicas, max_age_days=7,
                retention=RetentionPolicy.WORK_QUEUE),
        _stream(DEADLETTER_STREAM, "Jobs that failed for good, with the reason",
                subjects.DEADLETTER_ALL, replicas=replicas, max_age_days=30,
                max_msg_size=2 * MAX_PAYLOAD_BYTES),
        _stream(SOURCE_CHANGES_STREAM,
                "Every change to a source (who, what changed; never a secret value)",
                subjects.SOURCE_CHANGES_ALL, replicas=replicas, max_age_days=400),
        _stream(CHANNELS_STREAM,
                "Channel switches (ChannelSwitch), published by the relay: "
                "channels.<session key or live-now>.switched",
                subjects.CHANNEL_SWITCHES_ALL, replicas=replicas, max_age_days=90,
                max_msgs_per_subject=10_000,
                # Relay replicas that take the same decision publish it under one message id.
                duplicate_window=120.0),
    ]


BUCKETS: Final = (
    Bucket(STREAMS_BUCKET, "Resolved streams, keyed <season>.<event>.<kind>.<stream-id>", history=16),
    Bucket(SESSIONS_BUCKET, "Current phase of every session, keyed <season>.<event>.<kind>",
           history=8),
    Bucket(SOURCES_BUCKET, "Source definitions, keyed <source-id>: the truth, seeded from the "
           "settings file", history=8),
    Bucket(SOURCE_STATS_BUCKET, "How each source has been doing, keyed <source-id>", history=1),
)

CONSUMERS: Final = (
    Consumer(
        SESSIONS_STREAM,
        ConsumerConfig(
            durable_name=EXTRACTOR_CONSUMER,
            description="Extraction jobs, shared by every extractor replica",
            filter_subject=subjects.SESSIONS_ALL,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            # With a backoff the server takes ack_wait from its first step, so they agree here.
            # Jobs that run longer send in-progress acks (extraction can take tens of seconds).
            ack_wait=30.0,
            max_deliver=6,
            backoff=[30.0, 60.0, 120.0, 300.0, 600.0],
            max_ack_pending=64,
        ),
    ),
    Consumer(
        JOBS_STREAM,
        ConsumerConfig(
            durable_name=WORKER_CONSUMER,
            description="Keep-fresh jobs: each run naks itself with the delay to its next run",
            filter_subject=subjects.EXTRACT_JOBS_ALL,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            # Long extractions send in-progress acks; a crashed worker's job returns after this.
            ack_wait=30.0,
            # Unbounded: a live stream's job is redelivered for as long as the session runs;
            # failures are counted by the worker, which dead-letters a job that never worked.
            max_deliver=-1,
            max_ack_pending=256,
        ),
    ),
)


async def _ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        await js.add_stream(config)
    except BadRequestError as exc:
        if exc.err_code != _STREAM_NAME_IN_USE:
            raise
        await js.update_stream(config)


async def apply(js: JetStreamContext, *, replicas: int = 1) -> None:
    """Create or update every stream, bucket and durable consumer of the topology."""
    for config in stream_configs(replicas):
        await _ensure_stream(js, config)
    for bucket in BUCKETS:
        await _ensure_stream(js, bucket.stream_config(replicas))
    for consumer in CONSUMERS:
        # The server treats a create with a changed, editable config as an update.
        await js.add_consumer(consumer.stream, consumer.config)


async def missing(js: JetStreamContext) -> list[str]:
    """Names of topology parts that do not exist (empty when the topology is in place)."""
    absent: list[str] = []
    names = [c.name or "" for c in stream_configs()] + [b.stream_name for b in BUCKETS]
    for name in names:
        try:
            await js.stream_info(name)
        except NotFoundError:
            absent.append(name)
    for consumer in CONSUMERS:
        durable = consumer.config.durable_name or ""
        try:
            await js.consumer_info(consumer.stream, durable)
        except NotFoundError:
            absent.append(f"{consumer.stream}/{durable}")
    return absent


#: How often every service checks that the topology is still there.
GUARD_INTERVAL: Final = 5.0


async def guard(js: JetStreamContext, *, replicas: int = 1, interval: float = GUARD_INTERVAL,
                on_rebuilt: Callable[[list[str]], Awaitable[None]] | None = None) -> None:
    """Forever: re-create any part of the topology deleted behind the system's back (a stream,
    a bucket, a durable consumer) and report what was rebuilt. NATS being down is not an
    error here: readiness reports it, and the next round checks again."""
    while True:
        await asyncio.sleep(interval)
        try:
            gone = await missing(js)
            if gone:
                log.warning("topology parts missing; re-creating them", missing=gone)
                await apply(js, replicas=replicas)
                if on_rebuilt is not None:
                    await on_rebuilt(gone)
        except (NatsError, TimeoutError) as exc:
            log.debug("topology check skipped", error=str(exc) or type(exc).__name__)


async def streams_kv(js: JetStreamContext) -> KeyValue:
    """Open the ``streams`` bucket (it must have been applied)."""
    return await js.key_value(STREAMS_BUCKET)


async def sessions_kv(js: JetStreamContext) -> KeyValue:
    """Open the ``sessions`` bucket (it must have been applied)."""
    return await js.key_value(SESSIONS_BUCKET)


async def sources_kv(js: JetStreamContext) -> KeyValue:
    """Open the ``sources`` bucket (it must have been applied)."""
    return await js.key_value(SOURCES_BUCKET)


async def source_stats_kv(js: JetStreamContext) -> KeyValue:
    """Open the ``source-stats`` bucket (it must have been applied)."""
    return await js.key_value(SOURCE_STATS_BUCKET)
