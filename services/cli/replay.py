"""``slipstream replay`` and ``slipstream tail``: JetStream history, and events as they happen,
decoded with the ``shared`` Structs and printed as a table or as JSON lines.

What can be read: the streams ``SESSIONS``, ``JOBS``, ``DEADLETTER``, ``SOURCE_CHANGES``
(who changed which source) and ``CHANNELS`` (channel switches), and the history of the KV
buckets ``streams``, ``sessions``, ``sources`` and ``source-stats`` (``--subject`` then filters
keys, such as ``2026.monaco.race.*``). Stream and source records are private: their header
and cookie values and URL query strings are shown as ``***``.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TextIO
from urllib.parse import urlsplit, urlunsplit

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy, RawStreamMsg
from nats.js.errors import NotFoundError

from shared import subjects, topology
from shared.channels import ChannelSwitch
from shared.codec import PayloadError, decode
from shared.jobs import DeadLetter, ExtractJob
from shared.logs import redact_text
from shared.sessions import SessionEvent, phase_of
from shared.sources import SourceChanged, SourceRecord, SourceStats
from shared.streams import StreamRecord, record_secrets, remove_secrets

#: Subjects a replay may not republish to: they are stored by Slipstream's own streams.
OWN_SUBJECTS: Final = ("sessions.", "jobs.", "deadletter.", "sources.", "channels.", "$KV.",
                         "$JS.")


class ReplayError(Exception):
    """A replay cannot run as asked; the message says why, readably."""


@dataclass(frozen=True)
class Source:
    """What a name on the command line reads: a stream, its subjects, and how to decode them."""

    stream: str
    subject_prefix: str
    type_: Any
    kv: bool = False

    def subject_for(self, pattern: str | None) -> str:
        if pattern is None:
            return f"{self.subject_prefix}>" if self.kv else ">"
        if self.kv and not pattern.startswith(f"{subjects.KV_PREFIX}."):
            return f"{self.subject_prefix}{pattern}"
        return pattern


SOURCES: Final[dict[str, Source]] = {
    topology.SESSIONS_STREAM: Source(topology.SESSIONS_STREAM, "", SessionEvent),
    topology.JOBS_STREAM: Source(topology.JOBS_STREAM, "", ExtractJob),
    topology.DEADLETTER_STREAM: Source(topology.DEADLETTER_STREAM, "", DeadLetter),
    topology.CHANNELS_STREAM: Source(topology.CHANNELS_STREAM, "", ChannelSwitch),
    topology.STREAMS_BUCKET: Source(topology.STREAMS_BUCKET_STREAM,
                                    subjects.kv_subjects(topology.STREAMS_BUCKET), StreamRecord,
                                    kv=True),
    topology.SESSIONS_BUCKET: Source(topology.SESSIONS_BUCKET_STREAM,
                                     subjects.kv_subjects(topology.SESSIONS_BUCKET), SessionEvent,
                                     kv=True),
    topology.SOURCE_CHANGES_STREAM: Source(topology.SOURCE_CHANGES_STREAM, "", SourceChanged),
    topology.SOURCES_BUCKET: Source(topology.SOURCES_BUCKET_STREAM,
                                    subjects.kv_subjects(topology.SOURCES_BUCKET), SourceRecord,
                                    kv=True),
    topology.SOURCE_STATS_BUCKET: Source(topology.SOURCE_STATS_BUCKET_STREAM,
                                         subjects.kv_subjects(topology.SOURCE_STATS_BUCKET),
                                         SourceStats, kv=True),
}


def source_named(name: str) -> Source:
    found = SOURCES.get(name) or SOURCES.get(name.upper()) or SOURCES.get(name.lower())
    if found is None:
        raise ReplayError(f"unknown stream {name!r}; one of: {', '.join(SOURCES)}")
    return found


_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``1h``, ``2d``, ``1h30m``."""
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None or not any(match.groups()):
        raise ReplayError(f"--since {text!r}: expected a duration such as 90s, 15m, 1h or 2d")
    d, h, m, s = (int(g or 0) for g in match.groups())
    return timedelta(days=d, hours=h, minutes=m, seconds=s)


@dataclass(frozen=True)
class Entry:
    """One message of the history, decoded (``value`` None: a KV delete, or undecodable)."""

    seq: int
    time: datetime
    subject: str
    operation: str
    value: msgspec.Struct | None
    error: str = ""
    raw: bytes = b""
    headers: dict[str, str] | None = None


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query="***")) if parts.query else url


def redact(value: msgspec.Struct | None) -> msgspec.Struct | None:
    """Stream records lose their secrets (headers, cookies, query strings) before printing; so
    does their health detail (older extractors quoted a source's page URL in it)."""
    if isinstance(value, StreamRecord):
        secrets = record_secrets(value)
        return msgspec.structs.replace(
            value, upstream_url=_redact_url(value.upstream_url),
            health_detail=remove_secrets(redact_text(value.health_detail), secrets),
            title=remove_secrets(value.title, secrets),
            headers=dict.fromkeys(value.headers, "***"),
            cookies=dict.fromkeys(value.cookies, "***"),
            variants=tuple(msgspec.structs.replace(v, uri=_redact_url(v.uri)) for v in value.variants))
    if isinstance(value, SourceRecord):
        return msgspec.structs.replace(value, url=_redact_url(value.url),
                                       headers=dict.fromkeys(value.headers, "***"),
                                       cookies=dict.fromkeys(value.cookies, "***"))
    return value


def to_entry(msg: RawStreamMsg | Msg, source: Source) -> Entry:
    """Decode a stored message (from a direct read, or from a consumer when following)."""
    if isinstance(msg, RawStreamMsg):
        seq, when = msg.seq or 0, msg.time or datetime.now(UTC)
    else:
        seq, when = msg.metadata.sequence.stream, msg.metadata.timestamp
    data = msg.data or b""
    headers = dict(msg.headers or {})
    operation = headers.get("KV-Operation", "PUT") if source.kv else "PUB"
    value: msgspec.Struct | None = None
    error = ""
    if operation == "PUT" or not source.kv:
        try:
            value = decode(data, source.type_)
        except PayloadError as exc:
            error = str(exc)
    return Entry(seq=seq, time=when, subject=msg.subject or "", operation=operation,
                 value=redact(value), error=error, raw=data, headers=headers or None)


def summary(entry: Entry) -> str:
    """One readable line about an entry's payload."""
    value = entry.value
    if entry.operation in ("DEL", "PURGE"):
        return "deleted" if entry.operation == "DEL" else "purged"
    if value is None:
        return f"unreadable: {entry.error}"
    if isinstance(value, SessionEvent.__args__):
        s = value.session
        start = f"{s.start:%Y-%m-%d %H:%M}Z" if s.start else "time TBC"
        return f"{phase_of(value).value:<11} {s.event} · {s.name} ({start})"
    if isinstance(value, StreamRecord):
        detail = f" ({value.health_detail})" if value.health_detail else ""
        return f"{value.health.value:<9} {value.title or value.id} via {value.extractor or '?'}{detail}"
    if isinstance(value, ExtractJob):
        return f"extract {value.source_id} for {value.session.key}"
    if isinstance(value, ChannelSwitch):
        detail = f": {value.detail}" if value.detail else ""
        return (f"on air {value.from_stream or 'nothing'} -> {value.to_stream or 'off-air slate'}"
                f" ({value.reason.value}{detail})")
    if isinstance(value, SourceChanged):
        what = f" ({', '.join(value.changed)})" if value.action == "edited" else ""
        return f"{value.action.value:<9} {value.source_id} by {value.who}{what}"
    if isinstance(value, SourceRecord):
        state = "enabled" if value.enabled else "disabled"
        return f"{state:<9} {value.name or value.id} {value.url} via {value.extractor}"
    if isinstance(value, DeadLetter):
        return f"dead letter from {value.consumer} after {value.deliveries} tries: {value.reason}"
    return msgspec.json.encode(value).decode()[:100]


def _key(entry: Entry, source: Source) -> str:
    return entry.subject.removeprefix(source.subject_prefix) if source.kv else entry.subject


def print_table(entries: list[Entry], source: Source, out: TextIO) -> None:
    rows = [(str(e.seq), f"{e.time.astimezone(UTC):%Y-%m-%d %H:%M:%S}", _key(e, source), summary(e))
            for e in entries]
    head = ("seq", "time (UTC)", "key" if source.kv else "subject", "event")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(3)]
    out.write("  ".join(h.ljust(w) for h, w in zip(head, [*widths, 0], strict=True)).rstrip() + "\n")
    for row in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, [*widths, 0], strict=True)).rstrip() + "\n")


_json = msgspec.json.Encoder()


def json_line(entry: Entry, source: Source) -> str:
    """``{"seq", "time", "subject", "key"?, "operation", "data"}``: ``data`` decodes with the
    stream's Struct (null for deletes; the error for an undecodable payload)."""
    line: dict[str, Any] = {"stream": source.stream, "seq": entry.seq,
                            "time": entry.time.astimezone(UTC), "subject": entry.subject,
                            "operation": entry.operation, "data": entry.value}
    if source.kv:
        line["key"] = _key(entry, source)
    if entry.error:
        line["error"] = entry.error
    return _json.encode(line).decode()


async def history(nc: Client, source: Source, *, subject: str | None = None,
                  since: timedelta | None = None, from_seq: int | None = None,
                  limit: int | None = None) -> AsyncIterator[RawStreamMsg]:
    """The stored messages of ``source`` from a point on, oldest first, ending at the newest
    one present when it started. Read directly by sequence (no consumer), so it works on the
    JOBS work queue too, which allows no second consumer."""
    js = nc.jetstream()
    try:
        info = await js.stream_info(source.stream)
    except NotFoundError as exc:
        raise ReplayError(f"no stream {source.stream} on this NATS: is Slipstream running "
                          "against it?") from exc
    first, last = info.state.first_seq, info.state.last_seq
    if info.state.messages == 0:
        return
    filter_subject = source.subject_for(subject)
    seq = max(first, from_seq or first)
    if since is not None and from_seq is None:
        seq = await _first_at_or_after(js, source.stream, first, last, datetime.now(UTC) - since)
    count = 0
    while seq <= last and (limit is None or count < limit):
        try:
            msg = await js.get_msg(source.stream, seq, subject=filter_subject, next=True)
        except NotFoundError:
            return  # nothing further matches
        if msg.seq is None or msg.seq > last:
            return
        yield msg
        count += 1
        seq = msg.seq + 1


async def _first_at_or_after(js: Any, stream: str, first: int, last: int, cutoff: datetime) -> int:
    """The first sequence stored at or after ``cutoff`` (binary search on stored times)."""
    low, high = first, last + 1
    while low < high:
        middle = (low + high) // 2
        try:
            msg = await js.get_msg(stream, middle, subject=">", next=True)
        except NotFoundError:
            high = middle
            continue
        if msg.time is not None and msg.time < cutoff:
            low = (msg.seq or middle) + 1
        else:
            high = middle
    return low


async def replay(nc: Client, name: str, *, subject: str | None, since: timedelta | None,
                 from_seq: int | None, as_json: bool, republish: str | None,
                 limit: int | None, out: TextIO = sys.stdout) -> int:
    """Print (or republish) the history, as a table or JSON lines; returns how many messages
    were read, in either form (the command exits 0 whether or not any matched)."""
    source = source_named(name)
    if republish is not None:
        if not re.fullmatch(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*", republish):
            raise ReplayError(f"--republish {republish!r}: expected a plain subject such as "
                              "debug.sessions (no spaces or wildcards)")
        if republish.startswith(OWN_SUBJECTS):
            raise ReplayError(f"--republish {republish!r}: that subject belongs to Slipstream's "
                              "own streams; pick one outside sessions.>, jobs.>, deadletter.>")
    entries: list[Entry] = []
    count = 0
    async for msg in history(nc, source, subject=subject, since=since, from_seq=from_seq,
                             limit=limit):
        count += 1
        entry = to_entry(msg, source)
        if republish is not None:
            headers = {k: v for k, v in (entry.headers or {}).items() if not k.startswith("Nats-")}
            headers["Slipstream-Replay-Of"] = f"{source.stream}:{entry.seq}:{entry.subject}"
            await nc.publish(republish, entry.raw, headers=headers)
        if as_json:
            out.write(json_line(entry, source) + "\n")
        else:
            entries.append(entry)
    if republish is not None:
        await nc.flush()
    if not as_json:
        if entries:
            print_table(entries, source, out)
        else:
            out.write(f"nothing in {source.stream} matches\n")
    return count


async def tail(nc: Client, names: list[str], *, as_json: bool, stop: asyncio.Event,
               out: TextIO = sys.stdout, on_ready: Callable[[], None] | None = None) -> None:
    """Print new events of ``names`` as they are stored, until ``stop``."""
    js = nc.jetstream()
    sources = [source_named(n) for n in names]
    if any(source.stream == topology.JOBS_STREAM for source in sources):
        raise ReplayError("JOBS is a work queue: it allows no second consumer, so it cannot be "
                          "followed; `slipstream replay JOBS` reads it")
    subs: list[Any] = []

    def printer(source: Source) -> Callable[[Msg], Any]:
        async def handle(msg: Msg) -> None:
            entry = to_entry(msg, source)
            if as_json:
                out.write(json_line(entry, source) + "\n")
            else:
                out.write(f"{entry.time.astimezone(UTC):%H:%M:%S}  {source.stream:<10}  "
                          f"{_key(entry, source):<40}  {summary(entry)}\n")
            out.flush()
        return handle

    try:
        subs += [await js.subscribe(source.subject_for(None), stream=source.stream,
                                    ordered_consumer=True, deliver_policy=DeliverPolicy.NEW,
                                    cb=printer(source)) for source in sources]
        if on_ready is not None:
            on_ready()
        await stop.wait()
    finally:
        for sub in subs:
            await sub.unsubscribe()
