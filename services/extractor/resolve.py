"""From a source page to a probed, validated stream: the extractor chain, output validation,
expiry from signed URLs, and the private record written to the KV.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final
from urllib.parse import parse_qs, parse_qsl, quote, urlsplit

import msgspec

from services.extractor import registry
from services.extractor.metrics import ATTEMPT_SECONDS, ATTEMPTS
from services.extractor.probe import ProbeError, ProbeResult, probe
from services.extractor.registry import Context, ExtractionError, Found
from shared.logs import redact_text
from shared.sessions import Session
from shared.settings import SourceSettings
from shared.streams import Health, StreamRecord, remove_secrets
from shared.times import UtcDateTime

_HEADER_NAME: Final = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_COOKIE_NAME: Final = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")
_BAD_VALUE: Final = re.compile(r"[\r\n\x00]")
#: Headers an extractor may not choose: the relay and httpx set these themselves.
_RESERVED: Final = frozenset({"host", "content-length", "connection", "transfer-encoding",
                              "upgrade", "te", "trailer", "keep-alive", "proxy-authorization",
                              "cookie"})
_EXPIRY_KEYS: Final = ("expires", "expire", "exp", "e", "validto", "valid_to", "st_expires")


class InvalidOutputError(ValueError):
    """An extractor returned something that must not reach the KV."""


class ResolveError(Exception):
    """Every extractor in the chain failed; ``attempts`` says what each one did."""

    def __init__(self, attempts: list[Attempt]) -> None:
        self.attempts = attempts
        summary = "; ".join(f"{a.extractor}: {a.detail}" for a in attempts) or "no extractor matches"
        super().__init__(summary)
        self.refused = any(a.refused for a in attempts)


@dataclass(frozen=True)
class Verdict:
    """What probing one candidate said: ``accepted``, ``fallback`` (usable, but not live: kept
    only if no live candidate turns up) or ``rejected``, and why."""

    url: str
    via: str
    verdict: str
    why: str


@dataclass(frozen=True)
class Attempt:
    """One extractor's try, with the verdict on each candidate it found."""

    extractor: str
    ok: bool
    detail: str
    elapsed_ms: float
    refused: bool = False
    candidates: tuple[Verdict, ...] = ()


@dataclass(frozen=True)
class Resolution:
    """A working stream: what was found, by whom, and its probe."""

    found: Found
    extractor: str
    probe: ProbeResult
    attempts: list[Attempt] = field(default_factory=list)


class CachedFound(msgspec.Struct, frozen=True, kw_only=True):
    """An extraction result cached for replicas (Redis) so they do not redo the same page."""

    url: str
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    cookies: dict[str, str] = msgspec.field(default_factory=dict)
    title: str = ""
    extractor: str
    expires_at: UtcDateTime | None = None

    @classmethod
    def of(cls, resolution: Resolution) -> CachedFound:
        f = resolution.found
        return cls(url=f.url, headers=dict(f.headers), cookies=dict(f.cookies), title=f.title,
                   extractor=resolution.extractor, expires_at=f.expires_at)

    def found(self) -> Found:
        return Found(url=self.url, headers=self.headers, cookies=self.cookies, title=self.title,
                     expires_at=self.expires_at)


def cache_key(source: SourceSettings, url: str) -> str:
    """Cache key of a source's page: the same page resolves to the same stream."""
    digest = hashlib.sha256(f"{source.id}\0{source.extractor}\0{url}".encode()).hexdigest()[:24]
    return f"extract:{source.id}:{digest}"


def page_url(source: SourceSettings, session: Session) -> str:
    """The source's URL with the session's fields filled in (each value URL-quoted)."""
    values = {"key": session.key, "season": str(session.season), "round": str(session.round),
              "event": session.key.split(".")[1], "kind": session.kind.value,
              "country": session.country, "circuit": session.circuit}
    return source.url.format_map({k: quote(v, safe="") for k, v in values.items()})


def validate(found: Found) -> Found:
    """Refuse output that could smuggle anything into the relay's requests."""
    parts = urlsplit(found.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidOutputError(f"playlist URL scheme {parts.scheme!r} is not http(s)")
    if len(found.url) > 4096 or _BAD_VALUE.search(found.url):
        raise InvalidOutputError("playlist URL is too long or has control characters")
    headers = {}
    for name, value in found.headers.items():
        if not _HEADER_NAME.match(name) or _BAD_VALUE.search(value) or len(value) > 2048:
            raise InvalidOutputError(f"header {name[:40]!r} is not a valid header")
        if name.lower() not in _RESERVED:
            headers[name] = value
    for name, value in found.cookies.items():
        if not _COOKIE_NAME.match(name) or _BAD_VALUE.search(value) or ";" in value or len(value) > 4096:
            raise InvalidOutputError(f"cookie {name[:40]!r} is not a valid cookie")
    return Found(url=found.url, headers=headers, cookies=dict(found.cookies),
                 title=found.title[:200], expires_at=found.expires_at, via=found.via[:40])


def expiry_from_url(url: str) -> datetime | None:
    """The expiry a signed URL carries (``expires=``, ``exp=``, Akamai ``hdnts=exp=...``), if any."""
    query = parse_qs(urlsplit(url).query)
    candidates = [v for key in _EXPIRY_KEYS for v in query.get(key, [])]
    for token in query.get("hdnts", []) + query.get("hdnea", []):
        candidates += [p.split("=", 1)[1] for p in token.split("~") if p.startswith("exp=")]
    now = time.time()
    for value in candidates:
        if value.isdigit():
            stamp = int(value)
            stamp = stamp // 1000 if stamp > 10**11 else stamp  # milliseconds
            if now - 86400 < stamp < now + 366 * 86400:
                return datetime.fromtimestamp(stamp, UTC)
    return None


def safe_reason(reason: str, url: str, ctx: Context) -> str:
    """An extractor's reason without the page's query string or the source's secrets: yt-dlp,
    streamlink and Chromium quote the URL they were given, and the reason is stored in the
    stream record, logged and dead-lettered."""
    secrets = [*ctx.headers.values(), *ctx.cookies.values()]
    query = urlsplit(url).query
    secrets += [v for _, v in parse_qsl(query, keep_blank_values=True)]
    secrets += [pair.partition("=")[2] for pair in query.split("&")]  # as quoted, still encoded
    return remove_secrets(redact_text(reason), secrets)


async def _candidates(extractor: registry.Extractor, url: str, ctx: Context) -> list[Found]:
    found = await extractor.extract(url, ctx)
    if not found:
        raise ExtractionError("no playlist found")
    valid = []
    for candidate in found[:registry.MAX_CANDIDATES]:
        try:
            valid.append(validate(candidate))
        except InvalidOutputError:
            continue
    if not valid:
        raise InvalidOutputError("no candidate is a valid playlist URL")
    return valid


@dataclass
class Judged:
    """The candidates of one extractor, judged: the live one, if any, and the first playable
    one that is not live (the fallback)."""

    verdicts: list[Verdict] = field(default_factory=list)
    live: tuple[Found, ProbeResult] | None = None
    fallback: tuple[Found, ProbeResult] | None = None


async def _judge(candidates: list[Found], url: str, ctx: Context, judged: Judged) -> None:
    """Probe candidates in order until one is live; :class:`ProbeError` if none is."""
    for found in candidates:
        shown_url = safe_reason(found.url, url, ctx)
        try:
            result = await probe(ctx.client, ctx.policy, found.url, headers=found.headers,
                                 cookies=found.cookies, deadline=ctx.deadline)
        except ProbeError as exc:
            judged.verdicts.append(Verdict(shown_url, found.via, "rejected",
                                           safe_reason(exc.reason, url, ctx)))
            continue
        if result.live and result.health is not Health.DEAD:
            judged.verdicts.append(Verdict(shown_url, found.via, "accepted", result.detail))
            judged.live = (found, result)
            return
        judged.verdicts.append(Verdict(shown_url, found.via, "fallback", result.detail))
        if judged.fallback is None and result.health is not Health.DEAD:
            judged.fallback = (found, result)
    raise ProbeError("; ".join(f"{v.verdict}: {v.why}" for v in judged.verdicts) or "no candidate")


async def attempt(name: str, url: str, ctx: Context) -> tuple[Attempt, Judged]:
    """One extractor's try: its candidates, each probed in turn until one is live."""
    started = time.monotonic()
    judged = Judged()
    try:
        extractor = registry.get(name)
        async with asyncio.timeout(ctx.deadline):
            await _judge(await _candidates(extractor, url, ctx), url, ctx, judged)
    except (ExtractionError, ProbeError, InvalidOutputError, TimeoutError) as exc:
        detail = safe_reason(getattr(exc, "reason", "") or str(exc)
                             or f"no result within {ctx.deadline:.0f} s", url, ctx)
        refused = bool(getattr(exc, "refused", False))
        ATTEMPTS.labels(name, "refused" if refused else "failed").inc()
        ATTEMPT_SECONDS.labels(name).observe(time.monotonic() - started)
        return Attempt(name, ok=False, detail=detail, elapsed_ms=(time.monotonic() - started) * 1000,
                       refused=refused, candidates=tuple(judged.verdicts)), judged
    ATTEMPTS.labels(name, "ok").inc()
    ATTEMPT_SECONDS.labels(name).observe(time.monotonic() - started)
    detail = judged.live[1].detail if judged.live else ""
    return Attempt(name, ok=True, detail=detail, elapsed_ms=(time.monotonic() - started) * 1000,
                   candidates=tuple(judged.verdicts)), judged


async def resolve(url: str, choice: str, ctx: Context) -> Resolution:
    """Run the chain on ``url`` until a candidate probes as a live stream.

    Every candidate of every extractor gets its turn, in order. A candidate that plays but is
    not live (a VOD or an ad before the live stream) is taken only when no extractor of the
    chain finds a live one."""
    attempts: list[Attempt] = []
    fallback: tuple[Found, ProbeResult, str] | None = None
    for entry in registry.chain(choice, url):
        tried, judged = await attempt(entry.name, url, ctx)
        attempts.append(tried)
        if judged.live is not None:
            found, result = judged.live
            return Resolution(found=found, extractor=entry.name, probe=result, attempts=attempts)
        if fallback is None and judged.fallback is not None:
            fallback = (*judged.fallback, entry.name)
    if fallback is not None:
        found, result, name = fallback
        return Resolution(found=found, extractor=name, probe=result, attempts=attempts)
    raise ResolveError(attempts)


def to_record(resolution: Resolution, *, source: SourceSettings, session: Session,
              now: datetime) -> StreamRecord:
    """The private stream record for the KV."""
    found, result = resolution.found, resolution.probe
    expires = found.expires_at or expiry_from_url(found.url) or (now + timedelta(seconds=source.refresh))
    return StreamRecord(
        id=source.id, session=session.key, source_id=source.id, source_name=source.name or source.id,
        title=found.title or source.name or source.id, upstream_url=result.url,
        headers=dict(found.headers), cookies=dict(found.cookies), variants=result.variants,
        extractor=resolution.extractor, resolved_at=now, expires_at=expires, health=result.health,
        health_detail=result.detail, latency_ms=result.latency_ms, priority=source.priority,
        public_segments=not found.cookies and all(h.lower() == "user-agent" for h in found.headers))
