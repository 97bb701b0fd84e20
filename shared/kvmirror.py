"""A local mirror of a KV bucket, kept current by a watch: every service that needs "the current
value of every key" (the relay's streams, the gateway's sessions and streams) uses this one.

Values are decoded into a contract type; undecodable values are logged and skipped; deleted keys
are remembered as gone; revisions only ever move forward (a stale revision is ignored).

:meth:`KvMirror.follow_forever` also survives the bucket being deleted or re-created behind the
system's back, and through its stream being purged (which no watcher hears about: it is seen as
a value the mirror holds whose revision is below the stream's first sequence, so its message is
gone): the mirror empties at once (nobody is served stale values), starts over with the bucket's
current revisions, and tells its owner (``on_reset``). A purge of single subjects through the
stream API (rather than the KV's own purge) is not noticed.

A mirror made with ``keep_lost`` also remembers, for that many seconds, the values that vanished
behind the system's back (a ``PURGE`` rather than a ``DEL``, a lost or purged bucket) so its owner
can show them as "being re-resolved" rather than as gone; a new value or a ``DEL`` for the key
ends that at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue

from shared import logs, topology
from shared.codec import PayloadError, decode
from shared.tasks import background

log = logs.get(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Lost(Generic[T]):
    """A value that vanished behind the system's back: its last value, the revision at which it
    vanished (0 when the whole bucket did) and when (``time.monotonic()``)."""

    value: T
    revision: int
    at: float


class KvMirror(Generic[T]):
    """``values[key] = (value, revision)`` for every key of a bucket (matching ``pattern``)."""

    def __init__(self, type_: type[T] | Any, *, on_change: Callable[[str, T | None, int], None]
                 | None = None, keep_lost: float = 0.0) -> None:
        self.type = type_
        self.values: dict[str, tuple[T, int]] = {}
        self.gone: set[str] = set()
        self.lost: dict[str, Lost[T]] = {}
        self.keep_lost = keep_lost
        self.revision = 0
        self.synced = asyncio.Event()
        self.on_change = on_change

    def get(self, key: str) -> T | None:
        found = self.values.get(key)
        return found[0] if found else None

    def apply(self, key: str, raw: bytes | None, revision: int, deleted: bool, *,
              purged: bool = False) -> None:
        """Apply one change (public so tests can drive the mirror without a bucket).

        ``purged``: the key was purged (a ``PURGE``, which Slipstream never does itself) rather
        than deleted: its value is remembered as lost when the mirror keeps lost values."""
        if revision and revision <= self.revision:
            return
        self.revision = max(self.revision, revision)
        if deleted or raw is None:
            old = self.values.pop(key, None)
            was_lost = None
            if purged and old is not None and self.keep_lost:
                self.lost[key] = Lost(old[0], revision, time.monotonic())
            elif not purged:
                was_lost = self.lost.pop(key, None)
            if old is not None or was_lost is not None:
                self.gone.add(key)
                if self.on_change:  # a lost value deleted for good is reported gone too
                    self.on_change(key, None, revision)
            return
        try:
            value = decode(raw, self.type)
        except PayloadError as exc:
            log.error("unreadable KV value ignored", key=key, error=str(exc))
            return
        self.values[key] = (value, revision)
        self.gone.discard(key)
        self.lost.pop(key, None)
        if self.on_change:
            self.on_change(key, value, revision)

    async def follow(self, kv: KeyValue, pattern: str = ">") -> None:
        """Apply the bucket's current values, then every change, until cancelled or until the
        watch fails (NATS away, the bucket gone): then it returns, and the caller decides."""
        try:
            watcher = await kv.watch(pattern)
            try:
                async for entry in watcher:
                    if entry is None:
                        self.synced.set()
                        continue
                    self.apply(entry.key, entry.value, entry.revision or 0,
                               entry.operation in ("DEL", "PURGE"),
                               purged=entry.operation == "PURGE")
            finally:
                with contextlib.suppress(NatsError, OSError, TimeoutError):
                    await watcher.stop()  # type: ignore[no-untyped-call]
        except (NatsError, TimeoutError) as exc:
            log.warning("KV watch failed; following again shortly", pattern=pattern,
                        error=str(exc) or type(exc).__name__)

    def start_over(self) -> None:
        """Forget everything (the bucket is gone, new or purged): every key is reported removed
        (and remembered as lost, at revision 0, when the mirror keeps lost values)."""
        values, self.values = self.values, {}
        self.revision = 0
        now = time.monotonic()
        if self.keep_lost:
            for key, lost in self.lost.items():
                self.lost[key] = Lost(lost.value, 0, lost.at)
            self.lost.update({key: Lost(value, 0, now) for key, (value, _) in values.items()})
        for key in values:
            self.gone.add(key)
            if self.on_change:
                self.on_change(key, None, 0)

    def expire_lost(self, now: float) -> list[tuple[str, Lost[T]]]:
        """Stop remembering lost values older than ``keep_lost`` seconds; return them."""
        expired = [(key, lost) for key, lost in self.lost.items()
                   if now - lost.at >= self.keep_lost]
        for key, _ in expired:
            del self.lost[key]
        return expired

    async def follow_forever(self, js: JetStreamContext, bucket: str, *, pattern: str = ">",
                             check: float = 2.0, on_reset: Callable[[], None] | None = None) -> None:
        """Follow ``bucket`` until cancelled, through its deletion, re-creation and purge."""
        stream = topology.kv_stream(bucket)
        followed_once, forgotten = False, False
        followed: datetime | None = None  # the creation time of the bucket last followed
        while True:
            try:
                kv = await js.key_value(bucket)
                created = (await js.stream_info(stream)).created
            except NotFoundError:
                if followed_once and not forgotten:
                    log.warning("KV bucket gone; its values are forgotten", bucket=bucket)
                    self._reset(on_reset)
                    forgotten = True
                await asyncio.sleep(check)
                continue
            except (NatsError, TimeoutError):
                await asyncio.sleep(check)
                continue
            if followed_once and created != followed and not forgotten:
                log.warning("KV bucket re-created; following it afresh", bucket=bucket)
                self._reset(on_reset)
            followed_once, followed, forgotten = True, created, False
            if await self._follow_while_intact(js, kv, stream, created=created,
                                               pattern=pattern, check=check):
                log.warning("KV bucket emptied behind our back; following it afresh",
                            bucket=bucket)
                self._reset(on_reset)

    async def _follow_while_intact(self, js: JetStreamContext, kv: KeyValue, stream: str, *,
                                   created: datetime | None, pattern: str, check: float) -> bool:
        """Follow ``kv`` until it is re-created or gone (False) or found purged (True).

        The latest message of every live key stays in the stream (history limits only remove
        older ones), so a value held at a revision below the stream's first sequence means its
        message vanished without a watcher hearing. Sequences only grow, so a late answer can
        only hide a purge for one check, never invent one."""
        async with background(self.follow(kv, pattern), f"kv-follow-{stream}") as following:
            while not following.done():
                await asyncio.sleep(check)
                try:
                    info = await js.stream_info(stream)
                except NotFoundError:
                    return False
                except (NatsError, TimeoutError):
                    continue
                if info.created != created:
                    return False
                first = info.state.first_seq or 0
                if any(0 < revision < first for _, revision in self.values.values()):
                    return True
        return False

    def _reset(self, on_reset: Callable[[], None] | None) -> None:
        self.start_over()
        if on_reset is not None:
            on_reset()
