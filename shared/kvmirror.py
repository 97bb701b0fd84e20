"""A local mirror of a KV bucket, kept current by a watch: every service that needs "the current
value of every key" (the relay's streams, the gateway's sessions and streams) uses this one.

Values are decoded into a contract type; undecodable values are logged and skipped; deleted keys
are remembered as gone; revisions only ever move forward (a stale revision is ignored).

:meth:`KvMirror.follow_forever` also survives the bucket being deleted or re-created behind the
system's back: the mirror empties at once (nobody is served stale values), starts over with the
new bucket's revisions, and tells its owner (``on_reset``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Generic, TypeVar

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue

from shared import logs
from shared.codec import PayloadError, decode
from shared.tasks import background

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

    def start_over(self) -> None:
        """Forget everything (the bucket is gone or new): every key is reported removed."""
        values, self.values = self.values, {}
        self.revision = 0
        for key in values:
            self.gone.add(key)
            if self.on_change:
                self.on_change(key, None, 0)

    async def follow_forever(self, js: JetStreamContext, bucket: str, *, pattern: str = ">",
                             check: float = 2.0, on_reset: Callable[[], None] | None = None) -> None:
        """Follow ``bucket`` until cancelled, through its deletion and re-creation."""
        stream = f"KV_{bucket}"
        followed_once, forgotten = False, False
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
            if followed_once and not forgotten:
                log.warning("KV bucket re-created; following it afresh", bucket=bucket)
                self._reset(on_reset)
            followed_once, forgotten = True, False
            async with background(self.follow(kv, pattern), f"kv-follow-{bucket}") as following:
                while not following.done():
                    await asyncio.sleep(check)
                    try:
                        if (await js.stream_info(stream)).created != created:
                            break
                    except NotFoundError:
                        break
                    except (NatsError, TimeoutError):
                        continue

    def _reset(self, on_reset: Callable[[], None] | None) -> None:
        self.start_over()
        if on_reset is not None:
            on_reset()
