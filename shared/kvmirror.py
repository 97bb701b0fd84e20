"""A local mirror of a KV bucket, kept current by a watch: every service that needs "the current
value of every key" (the relay's streams, the gateway's sessions and streams) uses this one.

Values are decoded into a contract type; undecodable values are logged and skipped; deleted keys
are remembered as gone; revisions only ever move forward (a stale revision is ignored).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Generic, TypeVar

from nats.errors import Error as NatsError
from nats.js.kv import KeyValue

from shared import logs
from shared.codec import PayloadError, decode

log = logs.get(__name__)
T = TypeVar("T")


class KvMirror(Generic[T]):
    """``values[key] = (value, revision)`` for every key of a bucket (matching ``pattern``)."""

    def __init__(self, type_: type[T], *, on_change: Callable[[str, T | None, int], None]
                 | None = None) -> None:
        self.type = type_
        self.values: dict[str, tuple[T, int]] = {}
        self.gone: set[str] = set()
        self.revision = 0
        self.synced = asyncio.Event()
        self.on_change = on_change

    def get(self, key: str) -> T | None:
        found = self.values.get(key)
        return found[0] if found else None

    def apply(self, key: str, raw: bytes | None, revision: int, deleted: bool) -> None:
        """Apply one change (public so tests can drive the mirror without a bucket)."""
        if revision and revision <= self.revision:
            return
        self.revision = max(self.revision, revision)
        if deleted or raw is None:
            if self.values.pop(key, None) is not None:
                self.gone.add(key)
                if self.on_change:
                    self.on_change(key, None, revision)
            return
        try:
            value = decode(raw, self.type)
        except PayloadError as exc:
            log.error("unreadable KV value ignored", key=key, error=str(exc))
            return
        self.values[key] = (value, revision)
        self.gone.discard(key)
        if self.on_change:
            self.on_change(key, value, revision)

    async def follow(self, kv: KeyValue, pattern: str = ">") -> None:
        """Apply the bucket's current values, then every change, until cancelled."""
        watcher = await kv.watch(pattern)
        try:
            async for entry in watcher:
                if entry is None:
                    self.synced.set()
                    continue
                self.apply(entry.key, entry.value, entry.revision or 0,
                           entry.operation in ("DEL", "PURGE"))
        finally:
            with contextlib.suppress(NatsError, OSError, TimeoutError):
                await watcher.stop()  # type: ignore[no-untyped-call]
