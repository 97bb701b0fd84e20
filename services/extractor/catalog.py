"""The sources the extractor knows: the operator's ``[[sources]]`` plus, under ``slipstream up``
with the demo, the demo origin's three pages (what seeds the ``sources`` bucket). Which of them
serve a given session, and what a change to one in the bucket asks the extractors to do. Pure.
"""

from __future__ import annotations

import enum
from datetime import datetime

from shared.sessions import Session
from shared.settings import Settings, SourceSettings
from shared.sources import SourceRecord, changed_fields, needs_reresolve

DEMO_PAGES = (
    ("demo-plain", "Demo: plain page", "/pages/plain", 30),
    ("demo-embedded", "Demo: embedded player", "/pages/embedded", 20),
    ("demo-scripted", "Demo: scripted page", "/pages/scripted", 10),
)


def sources(settings: Settings) -> dict[str, SourceSettings]:
    """Every configured source by id (demo sources first when enabled)."""
    found: dict[str, SourceSettings] = {}
    if settings.extractor.demo_sources:
        base = settings.extractor.demo_url.rstrip("/")
        for source_id, name, path, priority in DEMO_PAGES:
            found[source_id] = SourceSettings(id=source_id, name=name, url=base + path,
                                              priority=priority, refresh=300.0)
    found.update({s.id: s for s in settings.sources})
    return found


def for_session(catalog: dict[str, SourceSettings], session: Session) -> list[SourceSettings]:
    """The sources that serve this session's kind, highest priority first."""
    serving = [s for s in catalog.values() if not s.kinds or session.kind in s.kinds]
    return sorted(serving, key=lambda s: -s.priority)


class Reaction(enum.StrEnum):
    """What the extractors do about a change to a source."""

    #: Queue keep-fresh jobs for the sessions that are upcoming or live (new or enabled again).
    START = "start"
    #: Remove its streams (disabled or removed); its jobs stop at their next run.
    STOP = "stop"
    #: Resolve its streams again now (edited in a way that changes what is resolved).
    RERESOLVE = "reresolve"


def react(old: SourceRecord | None, new: SourceRecord | None) -> Reaction | None:
    """What a change of one source's record from ``old`` to ``new`` asks for (None: nothing,
    such as a new name or priority, or a disabled source edited)."""
    was_on = old is not None and old.enabled
    is_on = new is not None and new.enabled
    if new is not None and is_on and (old is None or not was_on
                                      or new.generation != old.generation):
        return Reaction.START
    if was_on and not is_on:
        return Reaction.STOP
    if old is not None and new is not None and is_on and needs_reresolve(changed_fields(old, new)):
        return Reaction.RERESOLVE
    return None


def missed(record: SourceRecord, now: datetime, window: float) -> bool:
    """Whether a source found enabled when a replica starts changed recently enough that its
    jobs may never have been queued (every replica down at the time): within ``window``
    seconds, the jobs' deduplicated message ids make queueing them again harmless."""
    return (record.enabled and record.updated_at is not None
            and (now - record.updated_at).total_seconds() < window)


def enabled(records: dict[str, SourceRecord]) -> tuple[dict[str, SourceSettings], dict[str, int]]:
    """The catalog (enabled sources) and their generations, from the bucket's records."""
    on = {k: r for k, r in records.items() if r.enabled}
    return {k: r.settings() for k, r in on.items()}, {k: r.generation for k, r in on.items()}
