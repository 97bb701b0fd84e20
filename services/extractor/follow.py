"""Every extractor replica follows the ``sources`` bucket: it seeds the bucket from the settings
file at start, keeps its jobs' catalog equal to the bucket's enabled sources, and acts on each
change (:func:`services.extractor.catalog.react`): a new or re-enabled source gets jobs for the
sessions on now, a disabled or removed one has its streams removed, an edited one is resolved
again. Every replica acts on every change; message ids and idempotent deletes make it once.

A bucket lost behind the system's back (deleted, purged) is put back: the sources this replica
holds are written back first (they still have their secrets), then the settings file seeds what
is missing, then the last change event of each source nobody holds any more restores it (events
carry no secret: one that needs a header, a cookie or a URL query comes back disabled for an
operator to complete); the running jobs carry on.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Final

import msgspec
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.errors import KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from services.extractor import catalog
from services.extractor.catalog import Reaction
from services.extractor.jobs import Jobs
from shared import logs, subjects, topology
from shared.codec import PayloadError, decode, encode
from shared.kv import keys as kv_keys
from shared.kvmirror import KvMirror
from shared.settings import Settings
from shared.sourceadmin import new_generation, publish, read_all
from shared.sources import Action, SourceChanged, SourceRecord, restore_plan, seed_plan, view
from shared.tasks import background

log = logs.get(__name__)

#: Who seeding and restoring say made the change.
FILE: Final = "file"
RESTORE: Final = "restore"
#: At start, a source changed this recently gets its jobs queued again, in case every replica
#: was down when it changed (inside the JOBS dedup window, so at most once).
MISSED_WINDOW: Final = topology.DUPLICATE_WINDOW - 600


async def seed(js: JetStreamContext, kv: KeyValue, settings: Settings) -> int:
    """Write what the settings file adds or changed into the bucket; returns how many writes.
    Replicas seeding at once race by compare-and-set: a lost race is someone else's write."""
    bucket = await read_all(kv)
    steps = seed_plan(catalog.sources(settings).values(), bucket, generation=new_generation())
    written = 0
    for step in steps:
        record = msgspec.structs.replace(step.record, updated_by=FILE,
                                         updated_at=datetime.now(UTC))
        try:
            if step.revision is None:
                revision = await kv.create(record.id, encode(record))
            else:
                revision = await kv.update(record.id, encode(record), last=step.revision)
        except KeyWrongLastSequenceError:
            continue
        written += 1
        await publish(js, SourceChanged(source_id=record.id, action=Action.SEEDED, who=FILE,
                                        changed=list(step.changed), source=view(record, revision),
                                        revision=revision, at=datetime.now(UTC)))
    if written:
        log.info("sources seeded from the settings file", written=written)
    return written


class SourceFollower:
    """Keeps ``jobs``' catalog in step with the ``sources`` bucket and acts on changes."""

    def __init__(self, settings: Settings, js: JetStreamContext, kv: KeyValue, jobs: Jobs) -> None:
        self.settings = settings
        self.js = js
        self.kv = kv
        self.jobs = jobs
        self.records: dict[str, SourceRecord] = {}
        self.mirror: KvMirror[SourceRecord] = KvMirror(SourceRecord, on_change=self._changed)
        self.todo: asyncio.Queue[tuple[Reaction | str, str, int]] = asyncio.Queue()

    def _changed(self, key: str, record: SourceRecord | None, revision: int) -> None:
        if record is None and revision == 0:
            return  # the bucket was lost: keep what we hold (see restore)
        old = self.records.get(key)
        if record is None:
            self.records.pop(key, None)
        else:
            self.records[key] = record
        self.jobs.catalog, self.jobs.generations = catalog.enabled(self.records)
        if not self.mirror.synced.is_set():
            return  # the snapshot: nothing changed, see missed() at sync
        reaction = catalog.react(old, record)
        if reaction is not None:
            self.todo.put_nowait((reaction, key, revision))

    def _reset(self) -> None:
        self.todo.put_nowait(("restore", "", 0))

    async def run(self) -> None:
        """Follow the bucket and act on changes, until cancelled."""
        following = self.mirror.follow_forever(self.js, topology.SOURCES_BUCKET,
                                               on_reset=self._reset)
        async with background(following, "sources-follow", critical=True):
            await self.mirror.synced.wait()
            now = datetime.now(UTC)
            for key, record in self.records.items():
                if catalog.missed(record, now, MISSED_WINDOW):
                    self.todo.put_nowait((Reaction.START, key, 0))
            while True:
                reaction, key, revision = await self.todo.get()
                try:
                    await self._act(reaction, key, revision)
                except (NatsError, TimeoutError) as exc:
                    log.warning("source change not acted on yet; retrying", source=key,
                                reaction=str(reaction), error=str(exc) or type(exc).__name__)
                    await asyncio.sleep(1.0)
                    self.todo.put_nowait((reaction, key, revision))

    async def _act(self, reaction: Reaction | str, key: str, revision: int) -> None:
        if reaction == Reaction.START:
            await self.jobs.start_source(key)
        elif reaction == Reaction.STOP:
            await self.jobs.stop_source(key)
        elif reaction == Reaction.RERESOLVE:
            await self.jobs.reresolve_source(key, revision)
        elif reaction == "restore":
            await self.restore()

    async def restore(self) -> None:
        """Put the sources back into a bucket lost behind the system's back: what this replica
        holds, then the settings file's seed."""
        kv = await topology.sources_kv(self.js)
        restored = 0
        for record in list(self.records.values()):
            try:
                revision = await kv.create(record.id, encode(record))
            except KeyWrongLastSequenceError:
                continue  # another replica was first
            restored += 1
            await publish(self.js, SourceChanged(
                source_id=record.id, action=Action.RESTORED, who=RESTORE,
                source=view(record, revision), revision=revision, at=datetime.now(UTC)))
        seeded = await seed(self.js, kv, self.settings)
        from_events = await restore_from_events(self.js, kv)
        log.warning("sources bucket was lost; put back", restored=restored, seeded=seeded,
                    from_events=from_events)


async def restore_from_events(js: JetStreamContext, kv: KeyValue) -> int:
    """Put back each source whose last change event says it exists but which is not in the
    bucket (lost while no replica held it); returns how many."""
    restored = 0
    for record in restore_plan(await last_changes(js), await kv_keys(kv)):
        try:
            revision = await kv.create(record.id, encode(record))
        except KeyWrongLastSequenceError:
            continue
        restored += 1
        await publish(js, SourceChanged(
            source_id=record.id, action=Action.RESTORED, who=RESTORE,
            changed=["enabled"] if not record.enabled else [],
            source=view(record, revision), revision=revision, at=datetime.now(UTC)))
    if restored:
        log.warning("sources restored from their change events", restored=restored)
    return restored


#: Seconds to wait for the next message when reading the last change of each source.
_QUIET: Final = 1.0


async def last_changes(js: JetStreamContext) -> dict[str, SourceChanged]:
    """The last change event of every source, from the ``SOURCE_CHANGES`` stream."""
    found: dict[str, SourceChanged] = {}
    try:
        info = await js.stream_info(topology.SOURCE_CHANGES_STREAM)
    except NotFoundError:
        return found
    if not info.state.messages:
        return found
    sub = await js.subscribe(subjects.SOURCE_CHANGES_ALL, stream=topology.SOURCE_CHANGES_STREAM,
                             ordered_consumer=True,
                             deliver_policy=DeliverPolicy.LAST_PER_SUBJECT)
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=_QUIET)
            except TimeoutError:
                break
            try:
                event = decode(msg.data, SourceChanged)
            except PayloadError:
                continue
            found[event.source_id] = event
            if msg.metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    return found
