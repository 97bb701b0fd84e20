"""Sources as data: validation, seeding from the settings file, edits that keep secrets, what
an edit changed, the public view and the statistics."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from shared.codec import decode, encode
from shared.settings import SourceSettings
from shared.sources import (
    Action,
    SourceChanged,
    SourceError,
    SourceRecord,
    apply_edit,
    changed_fields,
    digest,
    from_settings,
    needs_reresolve,
    parse,
    record_attempt,
    redact,
    restore_plan,
    seed_plan,
    stats_view,
    view,
)

NOW = datetime(2026, 5, 24, 13, 0, tzinfo=UTC)


def test_parse_accepts_a_template_and_refuses_unknown_fields_readably() -> None:
    """A URL template may use the session's fields; an unknown one is named in the error."""
    record = parse({"id": "site-a", "url": "https://a.example/{event}/{kind}"})
    assert record.url.endswith("{event}/{kind}")
    assert record.enabled
    with pytest.raises(SourceError, match=r"unknown fields \['track'\]"):
        parse({"id": "site-a", "url": "https://a.example/{track}"})
    with pytest.raises(SourceError, match="malformed"):
        parse({"id": "site-a", "url": "https://a.example/{event"})
    with pytest.raises(SourceError, match="must start with http"):
        parse({"id": "site-a", "url": "ftp://a.example/"})


def test_parse_refuses_an_unknown_extractor_and_a_bad_id() -> None:
    """The extractor must be one Slipstream has; the id must be a short token."""
    with pytest.raises(SourceError, match="unknown extractor 'curl'; one of: auto, browser"):
        parse({"id": "a", "url": "https://a.example/", "extractor": "curl"})
    with pytest.raises(SourceError, match="id must be a short token"):
        parse({"id": "Not A Token", "url": "https://a.example/"})
    with pytest.raises(SourceError, match="headers"):
        parse({"id": "a", "url": "https://a.example/", "headers": {"X-Bad": "a\r\nb"}})


def test_seed_adds_missing_updates_changed_and_keeps_operator_edits() -> None:
    """Absent from the bucket: added; file entry changed since seeded: file wins; unchanged
    file entry: the operator's edit of the record survives."""
    a = SourceSettings(id="a", url="https://a.example/")
    b = SourceSettings(id="b", url="https://b.example/")
    c = SourceSettings(id="c", url="https://c.example/")
    edited_b = msgspec.structs.replace(from_settings(b), name="renamed by operator", generation=5)
    old_c = msgspec.structs.replace(from_settings(SourceSettings(id="c", url="https://old/")),
                                    generation=7)
    bucket = {"b": (edited_b, 11), "c": (old_c, 12)}
    steps = seed_plan([a, b, c], bucket, generation=99)
    assert [(s.record.id, s.revision) for s in steps] == [("a", None), ("c", 12)]
    assert steps[0].record.generation == 99
    assert steps[0].record.seed == digest(a)
    assert steps[1].record.url == "https://c.example/"
    assert steps[1].record.generation == 7
    assert steps[1].changed == ("url",)


def test_seed_gives_a_new_generation_to_a_file_entry_enabled_again() -> None:
    """A file entry flipped from disabled to enabled starts afresh (new generation)."""
    on = SourceSettings(id="a", url="https://a.example/")
    off = msgspec.structs.replace(from_settings(SourceSettings(id="a", url="https://a.example/",
                                                               enabled=False)), generation=3)
    (step,) = seed_plan([on], {"a": (off, 4)}, generation=10)
    assert step.record.enabled
    assert step.record.generation == 10


def test_an_edit_keeps_saved_secret_values_it_was_not_given() -> None:
    """``None`` for a header keeps its saved value; a header left out is removed."""
    record = parse({"id": "a", "url": "https://a.example/",
                    "headers": {"X-Key": "secret-value-1", "X-Old": "gone-soon-123"},
                    "cookies": {"sid": "cookie-value-9"}})
    edited = apply_edit(record, {"headers": {"X-Key": None, "X-New": "fresh-value-2"},
                                 "priority": 5})
    assert edited.headers == {"X-Key": "secret-value-1", "X-New": "fresh-value-2"}
    assert edited.cookies == {"sid": "cookie-value-9"}
    assert changed_fields(record, edited) == ["headers.X-New", "headers.X-Old", "priority"]
    with pytest.raises(SourceError, match=r"headers\.X-Missing has no saved value"):
        apply_edit(record, {"headers": {"X-Missing": None}})
    with pytest.raises(SourceError, match="cannot edit generation"):
        apply_edit(record, {"generation": 3})


def test_what_needs_a_re_resolve() -> None:
    """Header, cookie, URL and extractor changes re-resolve; a new name or priority does not."""
    assert needs_reresolve(["headers.X-Key"])
    assert needs_reresolve(["url"])
    assert not needs_reresolve(["name", "priority"])


def test_views_and_events_never_carry_secret_values() -> None:
    """The public view and a change event name headers and cookies but hold no value."""
    record = parse({"id": "a", "url": "https://a.example/live?token=abcdef123456",
                    "headers": {"X-Key": "secret-value-1"}, "cookies": {"sid": "cookie-value-9"}})
    shown = view(record, 3)
    assert shown.header_names == ["X-Key"]
    assert shown.cookie_names == ["sid"]
    event = SourceChanged(source_id="a", action=Action.ADDED, who="admin:ops",
                          changed=changed_fields(None, record), source=shown, revision=3, at=NOW)
    wire = encode(event).decode()
    for secret in ("secret-value-1", "cookie-value-9", "abcdef123456"):
        assert secret not in wire
    assert decode(wire.encode(), SourceChanged) == event


def test_statistics_count_attempts_and_keep_the_last_error_redacted() -> None:
    """Success rate, last extractor and resolve time; a failure's error loses its secrets."""
    stats = record_attempt(None, "a", ok=True, extractor="http", elapsed_ms=812.34, error="",
                           at=NOW)
    error = redact("403 from https://cdn.example/x.m3u8?sig=abc123 with secret-value-1",
                   ["secret-value-1"])
    stats = record_attempt(stats, "a", ok=False, extractor="", elapsed_ms=5, error=error, at=NOW)
    shown = stats_view("a", stats, streams_now=1)
    assert (shown.attempts, shown.successes, shown.success_rate) == (2, 1, 0.5)
    assert shown.last_extractor == "http"
    assert shown.last_resolve_ms == 812.3
    assert "abc123" not in shown.last_error
    assert "secret-value-1" not in shown.last_error


def test_old_readers_skip_unknown_fields_of_a_record() -> None:
    """A record written by a newer version decodes (new fields are ignored)."""
    raw = b'{"id":"a","url":"https://a.example/","future_field":1}'
    assert decode(raw, SourceRecord).id == "a"


def test_a_lost_source_nobody_holds_comes_back_from_its_last_event() -> None:
    """Restored from events: one without secrets as it was; one with a header disabled, the
    header named with no value; a removed one, or one back already, not at all."""
    plain = parse({"id": "plain", "url": "https://p.example/{event}", "priority": 4})
    keyed = parse({"id": "keyed", "url": "https://k.example/", "headers": {"X-Key": "secret-1"}})

    def event(record: SourceRecord, action: Action = Action.EDITED) -> SourceChanged:
        return SourceChanged(source_id=record.id, action=action, who="cli:x",
                             source=view(record, 9), revision=9, at=NOW)

    gone = SourceChanged(source_id="gone", action=Action.REMOVED, who="cli:x", revision=3, at=NOW)
    last = {"plain": event(plain), "keyed": event(keyed), "gone": gone,
            "back": event(msgspec.structs.replace(plain, id="back"))}
    restored = {r.id: r for r in restore_plan(last, present=["back"])}
    assert sorted(restored) == ["keyed", "plain"]
    assert restored["plain"].enabled
    assert restored["plain"].url == plain.url
    assert restored["plain"].priority == 4
    assert not restored["keyed"].enabled
    assert restored["keyed"].headers == {"X-Key": ""}
