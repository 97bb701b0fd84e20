"""Contracts: session events, stream records and views, the codec."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from shared.codec import PayloadError, decode, encode
from shared.jobs import DeadLetter
from shared.sessions import (
    Cancelled,
    Live,
    Phase,
    Rescheduled,
    Session,
    SessionEvent,
    SessionKind,
    phase_of,
)
from shared.streams import Health, StreamRecord, StreamView, Variant, public_view

T0 = datetime(2026, 6, 7, 13, 0, tzinfo=UTC)
SESSION = Session(key="2026.monaco.race", season=2026, round=8, event="Monaco Grand Prix",
                  circuit="Circuit de Monaco", country="Monaco", kind=SessionKind.RACE,
                  name="Race", start=T0, end=T0 + timedelta(hours=2))
SECRET_URL = "https://cdn.example.test/live/master.m3u8?token=SECRET-TOKEN"


def record() -> StreamRecord:
    return StreamRecord(
        id="demo-plain", session="2026.monaco.race", source_id="demo", source_name="Demo",
        title="Demo stream", upstream_url=SECRET_URL,
        headers={"Referer": "https://pages.example.test/embed", "Authorization": "Bearer SECRET-B"},
        cookies={"session": "SECRET-COOKIE"},
        variants=(Variant(uri="https://cdn.example.test/v/720.m3u8?sig=SECRET-SIG",
                          bandwidth=3_000_000, width=1280, height=720, codecs="avc1.64001f"),),
        extractor="http", resolved_at=T0, health=Health.OK,
    )


@pytest.mark.parametrize(("event", "phase"), [
    (Live(session=SESSION, at=T0), Phase.LIVE),
    (Rescheduled(session=SESSION, at=T0 - timedelta(days=1), previous_start=T0 - timedelta(hours=1)),
     Phase.RESCHEDULED),
    (Cancelled(session=SESSION, at=T0, reason="weather"), Phase.CANCELLED),
])
def test_session_events_round_trip_as_a_tagged_union(event: SessionEvent, phase: Phase) -> None:
    """Each event decodes back to its own type from the union, its phase in the payload."""
    data = encode(event)
    assert msgspec.json.decode(data)["phase"] == phase
    assert phase_of(event) is phase
    assert decode(data, SessionEvent) == event  # type: ignore[arg-type]


def test_a_payload_from_another_program_decodes_by_its_phase() -> None:
    """What a program written elsewhere publishes: plain JSON, typed by its ``phase`` as spelled
    on the wire (other subscribers depend on that spelling); a phase no event carries is refused."""
    raw = msgspec.json.decode(encode(Live(session=SESSION, at=T0)))
    for wire, kind, phase in (("live", Live, Phase.LIVE), ("cancelled", Cancelled, Phase.CANCELLED)):
        event = decode(msgspec.json.encode({**raw, "phase": wire}), SessionEvent)  # type: ignore[arg-type]
        assert type(event) is kind
        assert phase_of(event) is phase
    with pytest.raises(PayloadError, match="phase"):
        decode(msgspec.json.encode({**raw, "phase": "postponed"}), SessionEvent)  # type: ignore[arg-type]


def test_naive_times_are_refused() -> None:
    """A time without a zone is an error, never silently taken as UTC or local."""
    payload = encode(Live(session=SESSION, at=T0)).replace(b"+00:00", b"").replace(b"Z", b"")
    with pytest.raises(PayloadError, match="timezone"):
        decode(payload, SessionEvent)  # type: ignore[arg-type]


def test_old_readers_skip_unknown_fields() -> None:
    """A newer writer's extra fields do not break an older reader."""
    raw = msgspec.json.decode(encode(Live(session=SESSION, at=T0)))
    raw["added_in_a_later_release"] = {"x": 1}
    raw["session"]["also_new"] = True
    assert decode(msgspec.json.encode(raw), SessionEvent) == Live(session=SESSION, at=T0)  # type: ignore[arg-type]


def test_a_session_cannot_end_before_it_starts() -> None:
    """Inconsistent times are refused at the boundary."""
    raw = msgspec.json.decode(msgspec.json.encode(SESSION))
    raw["end"] = (T0 - timedelta(minutes=1)).isoformat()
    with pytest.raises(PayloadError, match="ends before it starts"):
        decode(msgspec.json.encode(raw), Session)


def test_public_view_carries_nothing_upstream() -> None:
    """No upstream URL, header, cookie or variant URI survives into the public view."""
    view = public_view(record(), playback_url="http://relay.test/s/abc/master.m3u8", revision=7)
    text = encode(view).decode()
    for secret in ("SECRET", "cdn.example.test", "pages.example.test", "Referer", "cookie"):
        assert secret not in text
    assert view.qualities[0].label == "720p"
    assert decode(encode(view), StreamView) == view
    assert {f.name for f in msgspec.structs.fields(StreamView)}.isdisjoint(
        {"upstream_url", "headers", "cookies", "variants"})


def test_records_round_trip_and_refuse_non_http_upstreams() -> None:
    """A record survives the codec; a file:// upstream is refused at decode."""
    rec = record()
    assert decode(encode(rec), StreamRecord) == rec
    raw = msgspec.json.decode(encode(rec))
    raw["upstream_url"] = "file:///etc/passwd"
    with pytest.raises(PayloadError, match="upstream_url"):
        decode(msgspec.json.encode(raw), StreamRecord)


def test_decode_caps_size_and_names_the_type() -> None:
    """Oversized and malformed payloads raise PayloadError naming the contract."""
    with pytest.raises(PayloadError, match=r"DeadLetter.*exceeds"):
        decode(b"{" + b" " * 300_000 + b"}", DeadLetter)
    with pytest.raises(PayloadError, match="invalid StreamRecord payload"):
        decode(b"<html>not json</html>", StreamRecord)
