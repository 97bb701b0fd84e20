"""Changing sources: add, edit, enable, disable and remove a source in the ``sources`` bucket
(compare-and-set, so two operators never overwrite each other unknowingly) and publish the
change as a :class:`~shared.sources.SourceChanged` event. The CLI and the gateway's admin API
are thin over this; the extractors follow the bucket and act on what changed. It logs nothing
(the CLI's output stays what it prints; the gateway logs the changes it makes).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from shared import logs, subjects
from shared.codec import PayloadError, decode, encode
from shared.kv import keys as kv_keys
from shared.sources import (
    Action,
    SourceChanged,
    SourceError,
    SourceRecord,
    SourceStats,
    apply_edit,
    changed_fields,
    view,
)

log = logs.get(__name__)


class SourceNotFoundError(SourceError):
    """No source has this id."""


class SourceExistsError(SourceError):
    """A source with this id exists already."""


class SourceConflictError(SourceError):
    """The source changed while this change was being made: read it again and retry."""


def new_generation() -> int:
    """A generation for a source added or enabled now (milliseconds: distinct per change)."""
    return time.time_ns() // 1_000_000


async def read_all(kv: KeyValue) -> dict[str, tuple[SourceRecord, int]]:
    """Every readable source in the bucket, with its revision."""
    found: dict[str, tuple[SourceRecord, int]] = {}
    for key in await kv_keys(kv):
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            continue
        if entry.value is None:
            continue
        try:
            found[key] = (decode(entry.value, SourceRecord), entry.revision or 0)
        except PayloadError as exc:
            log.error("unreadable source record skipped", source=key, error=str(exc))
    return found


async def read_stats(kv: KeyValue) -> dict[str, SourceStats]:
    """The statistics of every source that has some."""
    found: dict[str, SourceStats] = {}
    for key in await kv_keys(kv):
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            continue
        if entry.value is None:
            continue
        try:
            found[key] = decode(entry.value, SourceStats)
        except PayloadError as exc:
            log.error("unreadable source statistics skipped", source=key, error=str(exc))
    return found


async def publish(js: JetStreamContext, event: SourceChanged) -> None:
    """Publish a change event (deduplicated per source, action and revision)."""
    await js.publish(subjects.source_changed(event.source_id), encode(event),
                     headers={"Nats-Msg-Id": f"source:{event.source_id}:{event.action.value}:"
                                             f"{event.revision}"})


class SourceAdmin:
    """Operations on the ``sources`` bucket, each one a compare-and-set write plus its event."""

    def __init__(self, js: JetStreamContext, kv: KeyValue) -> None:
        self.js = js
        self.kv = kv

    async def get(self, source_id: str) -> tuple[SourceRecord, int]:
        subjects.check_token(source_id)
        try:
            entry = await self.kv.get(source_id)
        except KeyNotFoundError as exc:
            raise SourceNotFoundError(f"no source {source_id!r}") from exc
        if entry.value is None:
            raise SourceNotFoundError(f"no source {source_id!r}")
        try:
            return decode(entry.value, SourceRecord), entry.revision or 0
        except PayloadError as exc:
            raise SourceError(f"source {source_id!r} is unreadable: {exc}") from exc

    async def all(self) -> dict[str, tuple[SourceRecord, int]]:
        return await read_all(self.kv)

    async def add(self, record: SourceRecord, who: str) -> SourceChanged:
        """Add a new source; :class:`SourceExistsError` if the id is taken."""
        fresh = msgspec.structs.replace(record, generation=new_generation(), seed="",
                                        updated_by=who, updated_at=datetime.now(UTC))
        try:
            revision = await self.kv.create(fresh.id, encode(fresh))
        except KeyWrongLastSequenceError as exc:
            raise SourceExistsError(f"a source {record.id!r} exists already; edit it, or remove "
                                    "it first") from exc
        return await self._changed(fresh, revision, Action.ADDED, who,
                                   changed_fields(None, fresh))

    async def edit(self, source_id: str, patch: dict[str, Any], who: str) -> SourceChanged:
        """Change some fields of a source (see :func:`shared.sources.apply_edit`)."""
        record, revision = await self.get(source_id)
        edited = apply_edit(record, patch)
        changed = changed_fields(record, edited)
        if not changed:
            return SourceChanged(source_id=source_id, action=Action.EDITED, who=who,
                                 source=view(record, revision), revision=revision,
                                 at=datetime.now(UTC))
        action = Action.EDITED
        generation = record.generation
        if changed == ["enabled"]:
            action = Action.ENABLED if edited.enabled else Action.DISABLED
        if edited.enabled and not record.enabled:
            generation = new_generation()
        edited = msgspec.structs.replace(edited, generation=generation, updated_by=who,
                                         updated_at=datetime.now(UTC))
        new_revision = await self._update(edited, revision)
        return await self._changed(edited, new_revision, action, who, changed)

    async def set_enabled(self, source_id: str, enabled: bool, who: str) -> SourceChanged:
        return await self.edit(source_id, {"enabled": enabled}, who)

    async def remove(self, source_id: str, who: str) -> SourceChanged:
        _, revision = await self.get(source_id)
        try:
            await self.kv.delete(source_id, last=revision)
        except KeyWrongLastSequenceError as exc:
            raise SourceConflictError(f"source {source_id!r} changed meanwhile; try "
                                      "again") from exc
        event = SourceChanged(source_id=source_id, action=Action.REMOVED, who=who,
                              changed=[], source=None, revision=revision + 1,
                              at=datetime.now(UTC))
        await publish(self.js, event)
        return event

    async def _update(self, record: SourceRecord, revision: int) -> int:
        try:
            return int(await self.kv.update(record.id, encode(record), last=revision))
        except KeyWrongLastSequenceError as exc:
            raise SourceConflictError(f"source {record.id!r} changed meanwhile; try "
                                      "again") from exc

    async def _changed(self, record: SourceRecord, revision: int, action: Action, who: str,
                       changed: list[str]) -> SourceChanged:
        event = SourceChanged(source_id=record.id, action=action, who=who, changed=changed,
                              source=view(record, revision), revision=revision,
                              at=datetime.now(UTC))
        await publish(self.js, event)
        return event
