"""Sources as data: the ``sources`` KV record, its public view, the change event, the per-source
statistics, and the pure rules around them (validation, seeding from the settings file, edits
that keep secret values, what an edit changed).

The bucket is the truth; the TOML file only seeds it. A record remembers the digest of the file
entry it was last seeded from (``seed``): a file entry that is absent from the bucket is added,
one whose digest changed since it was last seeded updates the record (file wins), and one whose
digest did not change leaves the record alone, so an operator's edits survive restarts.

``generation`` changes whenever a source is added or enabled again: a keep-fresh job carries the
generation it was queued for, so a job queued before a disable/enable cycle stops by itself
rather than run twice beside the new one.

Secrets: header and cookie values never leave the back end. The public view lists header and
cookie names only; events list names of changed fields only; an edit that gives a header with no
value (``None``) keeps the saved value.
"""

from __future__ import annotations

import enum
import hashlib
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final, get_args

import msgspec

from shared.logs import redact_text
from shared.sessions import SessionKind
from shared.settings import (
    TEMPLATE_FIELDS,
    ExtractorName,
    HeaderName,
    HeaderValue,
    Seconds,
    SourceId,
    SourceSettings,
)
from shared.streams import MIN_SECRET, remove_secrets
from shared.times import UtcDateTime

EXTRACTORS: Final = frozenset(get_args(ExtractorName))
#: The fields an operator sets (the rest is bookkeeping).
EDITABLE: Final = ("url", "name", "kinds", "extractor", "headers", "cookies", "user_agent",
                   "priority", "refresh", "max_concurrent", "enabled")
#: Fields whose change means the source's streams must be resolved again.
RESOLVING: Final = frozenset({"url", "kinds", "extractor", "headers", "cookies", "user_agent"})
UserAgent = Annotated[str, msgspec.Meta(max_length=512, pattern=r"^[^\r\n\x00]*$")]
Who = Annotated[str, msgspec.Meta(max_length=64)]


class SourceError(ValueError):
    """A source definition or change is invalid, or names a source that (does not) exist(s);
    the message says what, readably."""


class SourceRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One source in the ``sources`` bucket (key: its id). Private: holds header and cookie
    values."""

    id: SourceId
    url: str
    name: str = ""
    #: Session kinds this source serves; every kind when empty.
    kinds: list[SessionKind] = msgspec.field(default_factory=list)
    extractor: ExtractorName = "auto"
    headers: dict[HeaderName, HeaderValue] = msgspec.field(default_factory=dict)
    cookies: dict[HeaderName, HeaderValue] = msgspec.field(default_factory=dict)
    user_agent: UserAgent = ""
    priority: int = 0
    refresh: Seconds = 600.0
    max_concurrent: Annotated[int, msgspec.Meta(ge=1, le=64)] = 2
    enabled: bool = True
    #: Changes when the source is added or enabled again (see the module docstring).
    generation: int = 0
    #: Digest of the settings-file entry this record was last seeded from ("" if never).
    seed: str = ""
    updated_by: Who = ""
    updated_at: UtcDateTime | None = None

    def __post_init__(self) -> None:
        check_url(self.url)

    def settings(self) -> SourceSettings:
        """What the extractor works with."""
        return SourceSettings(id=self.id, url=self.url, name=self.name, kinds=list(self.kinds),
                              extractor=self.extractor, headers=dict(self.headers),
                              cookies=dict(self.cookies), user_agent=self.user_agent,
                              priority=self.priority, refresh=self.refresh,
                              max_concurrent=self.max_concurrent)


class SourceView(msgspec.Struct, frozen=True, kw_only=True):
    """A source as the admin page, the CLI and events show it: names of headers and cookies,
    never their values; the URL with its query string hidden."""

    id: str
    url: str
    name: str
    kinds: list[SessionKind]
    extractor: str
    header_names: list[str]
    cookie_names: list[str]
    user_agent: str
    priority: int
    refresh: float
    max_concurrent: int
    enabled: bool
    from_file: bool = False
    updated_by: str = ""
    updated_at: UtcDateTime | None = None
    revision: int = 0


class Action(enum.StrEnum):
    """What happened to a source."""

    ADDED = "added"
    EDITED = "edited"
    ENABLED = "enabled"
    DISABLED = "disabled"
    REMOVED = "removed"
    #: Written from the settings file at start (added, or updated because the file changed).
    SEEDED = "seeded"
    #: Put back after the bucket was lost behind the system's back.
    RESTORED = "restored"


class SourceChanged(msgspec.Struct, frozen=True, kw_only=True):
    """A change to a source, on ``sources.changes.<id>`` (kept on the ``SOURCE_CHANGES``
    stream for audit). Never carries a header or cookie value."""

    source_id: SourceId
    action: Action
    #: Who: the admin token's name (``admin:<name>``), the CLI's user (``cli:<user>``), ``file``.
    who: Who
    #: Names of the fields that changed (``headers.X-Key`` for one header).
    changed: list[str] = msgspec.field(default_factory=list)
    #: The source after the change (absent for a removal).
    source: SourceView | None = None
    revision: int = 0
    at: UtcDateTime


class SourceStats(msgspec.Struct, frozen=True, kw_only=True):
    """How a source has been doing, in the ``source-stats`` bucket (key: its id), kept by the
    extractors. Secrets are taken out of ``last_error`` before it is written."""

    source_id: SourceId
    attempts: int = 0
    successes: int = 0
    last_extractor: str = ""
    last_resolve_ms: float | None = None
    last_error: str = ""
    last_error_at: UtcDateTime | None = None
    last_ok_at: UtcDateTime | None = None


class SourceStatsView(msgspec.Struct, frozen=True, kw_only=True):
    """One row of ``sources stats`` and the admin page."""

    source_id: str
    streams_now: int
    attempts: int
    successes: int
    success_rate: float | None
    last_extractor: str
    last_resolve_ms: float | None
    last_error: str
    last_error_at: UtcDateTime | None = None


class CheckRequest(msgspec.Struct, frozen=True, kw_only=True):
    """``control.extractor.check``: run the extractor chain on one source now, every extractor
    of it, and report each candidate with its verdict."""

    source_id: SourceId


class CandidateVerdict(msgspec.Struct, frozen=True, kw_only=True):
    """One candidate an extractor found, with the probe's verdict; the URL's query is hidden."""

    url: str
    via: str = ""
    verdict: str
    why: str = ""


class CheckAttempt(msgspec.Struct, frozen=True, kw_only=True):
    """One extractor's try in a check."""

    extractor: str
    ok: bool
    detail: str = ""
    elapsed_ms: float = 0.0
    candidates: list[CandidateVerdict] = msgspec.field(default_factory=list)


class CheckReply(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to a :class:`CheckRequest`; ``error`` when the check could not run."""

    source_id: str
    page_url: str = ""
    ok: bool = False
    attempts: list[CheckAttempt] = msgspec.field(default_factory=list)
    error: str = ""


def check_url(url: str) -> None:
    """Raise :class:`SourceError` unless ``url`` is an http(s) URL template using only the
    session fields Slipstream fills in."""
    if not url.startswith(("http://", "https://")):
        raise SourceError(f"url {url!r} must start with http:// or https://")
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(url) if f is not None}
    except ValueError as exc:
        raise SourceError(f"url template {url!r} is malformed: {exc} (write a literal brace "
                          "as {{ or }})") from exc
    unknown = fields - TEMPLATE_FIELDS
    if unknown:
        raise SourceError(f"url template {url!r} uses unknown fields {sorted(unknown)}; "
                          f"known: {', '.join(sorted(TEMPLATE_FIELDS))}")


def parse(fields: Mapping[str, Any]) -> SourceRecord:
    """Build a record from loose fields (CLI options, a JSON body); one readable error."""
    extractor = fields.get("extractor", "auto")
    if extractor not in EXTRACTORS:
        raise SourceError(f"unknown extractor {extractor!r}; one of: "
                          f"{', '.join(sorted(EXTRACTORS))}")
    if "url" in fields:
        check_url(str(fields["url"]))
    try:
        return msgspec.convert(dict(fields), SourceRecord, strict=False)
    except msgspec.ValidationError as exc:
        raise SourceError(_readable(str(exc))) from exc
    except ValueError as exc:  # __post_init__
        raise SourceError(str(exc)) from exc


def _readable(message: str) -> str:
    for name, hint in (("`$.id`", "id must be a short token: lower-case letters, digits, - and "
                        "_, starting with a letter or digit, at most 32 characters"),):
        if name in message:
            return hint
    return message.replace("`$.", "`")


def from_settings(source: SourceSettings) -> SourceRecord:
    """The record a settings-file entry seeds."""
    return SourceRecord(id=source.id, url=source.url, name=source.name, kinds=list(source.kinds),
                        extractor=source.extractor, headers=dict(source.headers),
                        cookies=dict(source.cookies), user_agent=source.user_agent,
                        priority=source.priority, refresh=source.refresh,
                        max_concurrent=source.max_concurrent, enabled=source.enabled,
                        seed=digest(source))


def digest(source: SourceSettings) -> str:
    """A digest of a settings-file entry (changes when the entry changes)."""
    return hashlib.sha256(msgspec.json.encode(source)).hexdigest()[:16]


@dataclass(frozen=True)
class SeedStep:
    """Write ``record`` to the bucket: create it (``revision`` None) or update it at
    ``revision``."""

    record: SourceRecord
    revision: int | None
    changed: tuple[str, ...] = ()


def seed_plan(file_sources: Iterable[SourceSettings],
              bucket: Mapping[str, tuple[SourceRecord, int]], *, generation: int) -> list[SeedStep]:
    """What seeding the bucket from the settings file writes: entries absent from the bucket
    are added; entries whose file digest changed since they were seeded update the record (the
    file wins); the rest is left alone. ``generation`` is what an added or re-enabled source
    gets."""
    steps: list[SeedStep] = []
    for source in file_sources:
        fresh = from_settings(source)
        found = bucket.get(source.id)
        if found is None:
            steps.append(SeedStep(msgspec.structs.replace(fresh, generation=generation), None,
                                  ("added",)))
            continue
        current, revision = found
        if current.seed == fresh.seed:
            continue
        enabled_again = fresh.enabled and not current.enabled
        updated = msgspec.structs.replace(
            fresh, generation=generation if enabled_again else current.generation)
        steps.append(SeedStep(updated, revision, tuple(changed_fields(current, updated))))
    return steps


def changed_fields(old: SourceRecord | None, new: SourceRecord) -> list[str]:
    """Names of the editable fields that differ (a header as ``headers.<name>``); never values."""
    if old is None:
        return list(EDITABLE)
    changed: list[str] = []
    for name in EDITABLE:
        before, after = getattr(old, name), getattr(new, name)
        if name in ("headers", "cookies"):
            changed += [f"{name}.{k}" for k in sorted(set(before) | set(after))
                        if before.get(k) != after.get(k)]
        elif before != after:
            changed.append(name)
    return changed


def needs_reresolve(changed: Iterable[str]) -> bool:
    """Whether a change of these fields must re-resolve the source's streams."""
    return any(c.split(".", 1)[0] in RESOLVING for c in changed)


def apply_edit(record: SourceRecord, patch: Mapping[str, Any]) -> SourceRecord:
    """``record`` with ``patch`` applied and validated. In ``headers`` and ``cookies`` (each the
    full set the source will have) a ``None`` value keeps the saved value of that name, which is
    how the admin page edits a source without ever having its secrets."""
    unknown = set(patch) - set(EDITABLE)
    if unknown:
        raise SourceError(f"cannot edit {', '.join(sorted(unknown))}; editable: "
                          f"{', '.join(EDITABLE)}")
    fields = msgspec.structs.asdict(record)
    for name, value in patch.items():
        if name in ("headers", "cookies"):
            if not isinstance(value, Mapping):
                raise SourceError(f"{name} must be an object of names to values")
            saved = getattr(record, name)
            merged = {}
            for key, given in value.items():
                if given is None:
                    if key not in saved:
                        raise SourceError(f"{name}.{key} has no saved value to keep; give one")
                    merged[key] = saved[key]
                else:
                    merged[key] = given
            fields[name] = merged
        else:
            fields[name] = value
    return parse(fields)


def secrets_of(record: SourceRecord) -> frozenset[str]:
    """Header and cookie values of a source (those long enough to be recognised)."""
    return frozenset(v for v in (*record.headers.values(), *record.cookies.values())
                     if len(v) >= MIN_SECRET)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without URL query strings, credentials or any of ``secrets``."""
    return remove_secrets(redact_text(text), secrets)


def view(record: SourceRecord, revision: int = 0) -> SourceView:
    """The public view of a source."""
    return SourceView(id=record.id, url=redact_text(record.url), name=record.name,
                      kinds=list(record.kinds), extractor=record.extractor,
                      header_names=sorted(record.headers), cookie_names=sorted(record.cookies),
                      user_agent=record.user_agent, priority=record.priority,
                      refresh=record.refresh, max_concurrent=record.max_concurrent,
                      enabled=record.enabled, from_file=bool(record.seed),
                      updated_by=record.updated_by, updated_at=record.updated_at,
                      revision=revision)


def stats_view(source_id: str, stats: SourceStats | None, streams_now: int) -> SourceStatsView:
    """Statistics of one source for display."""
    if stats is None:
        return SourceStatsView(source_id=source_id, streams_now=streams_now, attempts=0,
                               successes=0, success_rate=None, last_extractor="",
                               last_resolve_ms=None, last_error="")
    rate = stats.successes / stats.attempts if stats.attempts else None
    return SourceStatsView(source_id=source_id, streams_now=streams_now,
                           attempts=stats.attempts, successes=stats.successes, success_rate=rate,
                           last_extractor=stats.last_extractor,
                           last_resolve_ms=stats.last_resolve_ms, last_error=stats.last_error,
                           last_error_at=stats.last_error_at)


def record_attempt(stats: SourceStats | None, source_id: str, *, ok: bool, extractor: str,
                   elapsed_ms: float, error: str, at: datetime) -> SourceStats:
    """``stats`` after one resolution attempt (``error`` already redacted)."""
    base = stats or SourceStats(source_id=source_id)
    if ok:
        return msgspec.structs.replace(base, attempts=base.attempts + 1,
                                       successes=base.successes + 1, last_extractor=extractor,
                                       last_resolve_ms=round(elapsed_ms, 1), last_ok_at=at)
    return msgspec.structs.replace(base, attempts=base.attempts + 1, last_error=error[:500],
                                   last_error_at=at)


def restore_plan(last: Mapping[str, SourceChanged], present: Iterable[str]) -> list[SourceRecord]:
    """Sources to put back into a lost bucket from their last change events, for those nobody
    holds any more (not in the bucket again, not in the file). Events carry no secret values
    and hide URL queries: a source that had headers, cookies or a query comes back disabled,
    with its header and cookie names and empty values, for an operator to complete."""
    have = set(present)
    plan: list[SourceRecord] = []
    for source_id, event in sorted(last.items()):
        shown = event.source
        if source_id in have or event.action is Action.REMOVED or shown is None:
            continue
        incomplete = bool(shown.header_names or shown.cookie_names or "***" in shown.url)
        try:
            plan.append(parse({
                "id": source_id, "url": shown.url, "name": shown.name, "kinds": shown.kinds,
                "extractor": shown.extractor, "headers": dict.fromkeys(shown.header_names, ""),
                "cookies": dict.fromkeys(shown.cookie_names, ""), "user_agent": shown.user_agent,
                "priority": shown.priority, "refresh": shown.refresh,
                "max_concurrent": shown.max_concurrent,
                "enabled": shown.enabled and not incomplete, "generation": event.revision,
                "updated_by": "restore", "updated_at": event.at}))
        except SourceError:
            continue  # an event of an older, different shape: nothing sound to restore
    return plan
