"""KV helpers nats-py lacks: listing keys by a NATS wildcard, filtered by the server.

(nats-py's ``KeyValue.keys(filters=...)`` matches filters as substrings on the client, so a
wildcard like ``2026.monaco.race.*`` matches nothing.)
"""

from __future__ import annotations

from nats.js.kv import KeyValue


async def keys(kv: KeyValue, pattern: str = ">") -> list[str]:
    """Keys currently present that match ``pattern`` (``*`` one token, ``>`` the rest)."""
    watcher = await kv.watch(pattern, ignore_deletes=True, meta_only=True)
    found: list[str] = []
    try:
        async for entry in watcher:
            if entry is None:
                break
            found.append(entry.key)
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]
    return found
