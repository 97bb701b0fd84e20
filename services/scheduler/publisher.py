"""Publishing session events exactly once in effect, and keeping the ``sessions`` KV current.

Order per event: publish on ``SESSIONS`` with its deterministic ``Nats-Msg-Id`` (the server
drops a repeat inside the dedup window; beyond it, the last message on the event's subject is
compared), then record it in the ``sessions`` KV with compare-and-set. A scheduler that dies
between the two repeats the publish on restart and it is dropped as a duplicate; two schedulers
side by side race on the KV revision and the loser re-reads instead of publishing twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.errors import KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from services.scheduler.metrics import PUBLISHED
from services.scheduler.planner import message_id
from shared import logs, subjects, topology
from shared.codec import PayloadError, decode, encode
from shared.sessions import SessionEvent, phase_of

log = logs.get(__name__)


@dataclass(frozen=True, slots=True)
class Known:
    """The last event recorded for a session, with its KV revision (for compare-and-set)."""

    event: SessionEvent
    revision: int


class StaleStateError(RuntimeError):
    """Another scheduler recorded a newer state first: re-read and re-plan."""


async def read_state(kv: KeyValue) -> dict[str, Known]:
    """The last recorded event of every session in the ``sessions`` KV."""
    state: dict[str, Known] = {}
    watcher = await kv.watchall(ignore_deletes=True)
    try:
        async for entry in watcher:
            if entry is None:
                break
            if entry.value is None:
                continue
            try:
                event: SessionEvent = decode(entry.value, SessionEvent)
            except PayloadError as exc:
                log.error("unreadable session state ignored", key=entry.key, error=str(exc))
                continue
            state[entry.key] = Known(event=event, revision=entry.revision or 0)
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]
    return state


class Publisher:
    """Publishes events and records them, keeping an in-memory copy of the KV state."""

    def __init__(self, js: JetStreamContext, kv: KeyValue, state: dict[str, Known]) -> None:
        self.js = js
        self.kv = kv
        self.state = state

    async def _already_published(self, subject: str, msg_id: str) -> bool:
        try:
            last = await self.js.get_last_msg(topology.SESSIONS_STREAM, subject)
        except NotFoundError:
            return False
        return bool(last.headers and last.headers.get("Nats-Msg-Id") == msg_id)

    async def publish(self, event: SessionEvent, *, record: bool = True) -> bool:
        """Publish one event and (unless a newer one follows at once) record it; ``True`` if it
        was new on the stream."""
        key = event.session.key
        subject = subjects.session_event(key, phase_of(event).value)
        msg_id = message_id(event)
        fresh = False
        if not await self._already_published(subject, msg_id):
            ack = await self.js.publish(subject, encode(event), headers={"Nats-Msg-Id": msg_id})
            fresh = not ack.duplicate
        if record:
            await self._record(key, event)
        PUBLISHED.labels(phase_of(event).value, "new" if fresh else "already_stored").inc()
        log.info("session event", subject=subject, at=event.at.isoformat(),
                 published=fresh)
        return fresh

    async def _record(self, key: str, event: SessionEvent) -> None:
        known = self.state.get(key)
        try:
            if known is None:
                revision = await self.kv.create(key, encode(event))
            else:
                revision = await self.kv.update(key, encode(event), last=known.revision)
        except KeyWrongLastSequenceError as exc:
            raise StaleStateError(f"{key} was updated by another scheduler") from exc
        self.state[key] = Known(event=event, revision=revision)
