"""The relay's view of the ``streams`` KV: every record, kept current by a watch (no polling).

A removed stream is remembered as gone, so its viewers get 410 rather than 404.
"""

from __future__ import annotations

import asyncio
import contextlib

from nats.errors import Error as NatsError
from nats.js.kv import KeyValue

from shared import logs
from shared.codec import PayloadError, decode
from shared.streams import StreamRecord

log = logs.get(__name__)


class Records:
    """Stream records by key (``<session>.<stream-id>``)."""

    def __init__(self) -> None:
        self.records: dict[str, StreamRecord] = {}
        self.gone: set[str] = set()
        self.synced = asyncio.Event()

    def get(self, key: str) -> StreamRecord | None:
        return self.records.get(key)

    async def follow(self, kv: KeyValue) -> None:
        """Apply the KV's current values, then every change, until cancelled."""
        watcher = await kv.watchall()
        try:
            async for entry in watcher:
                if entry is None:
                    self.synced.set()
                    continue
                if entry.operation in ("DEL", "PURGE") or entry.value is None:
                    if self.records.pop(entry.key, None) is not None:
                        self.gone.add(entry.key)
                    continue
                try:
                    self.records[entry.key] = decode(entry.value, StreamRecord)
                except PayloadError as exc:
                    log.error("unreadable stream record ignored", key=entry.key, error=str(exc))
                    continue
                self.gone.discard(entry.key)
        finally:
            with contextlib.suppress(NatsError, OSError, TimeoutError):
                await watcher.stop()
