"""The channel exports for IPTV players, as pure functions: M3U, XMLTV (against its DTD), logos."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.gateway.exports import (
    LOGO_SIZE,
    Links,
    channels,
    listed,
    logo_label,
    logo_png,
    logo_svg,
    m3u,
    xmltv,
    xmltv_time,
)
from shared.sessions import Phase, Session, SessionKind, SessionStatus
from tests.services.gateway.xmltv import assert_valid_xmltv

NOW = datetime(2026, 6, 6, 12, 0, tzinfo=UTC)


def status(kind: SessionKind, phase: Phase, start: datetime | None, event: str = "Monaco Grand Prix",
           slug: str = "monaco") -> SessionStatus:
    session = Session(key=f"2026.{slug}.{kind.value}", season=2026, round=8, event=event,
                      circuit="Circuit de Monaco", country="Monaco", kind=kind,
                      name=kind.value.replace("-", " ").title(), start=start)
    return SessionStatus(session=session, phase=phase, since=NOW)


def url(channel: str) -> str:
    return f"http://relay.test/c/{channel}/k1.sig/master.m3u8"


def test_live_and_upcoming_sessions_get_channels_after_live_now() -> None:
    """"live now" comes first; then live, upcoming and soon-scheduled sessions, none else."""
    statuses = [
        status(SessionKind.PRACTICE_1, Phase.ENDED, NOW - timedelta(days=1)),
        status(SessionKind.PRACTICE_2, Phase.CANCELLED, NOW + timedelta(hours=1)),
        status(SessionKind.QUALIFYING, Phase.LIVE, NOW - timedelta(minutes=5)),
        status(SessionKind.RACE, Phase.SCHEDULED, NOW + timedelta(days=1)),
        status(SessionKind.SPRINT, Phase.SCHEDULED, None),
        status(SessionKind.RACE, Phase.SCHEDULED, NOW + timedelta(days=30), slug="silverstone"),
        status(SessionKind.PRACTICE_3, Phase.UPCOMING, NOW + timedelta(minutes=10)),
    ]
    found = channels(statuses, NOW, url, Links("http://gw.test"))
    assert [c.id for c in found] == ["live-now", "2026.monaco.qualifying", "2026.monaco.race",
                                     "2026.monaco.practice-3"]
    assert found[1].url == url("2026.monaco.qualifying")
    assert found[1].logo == "http://gw.test/export/logos/2026.monaco.qualifying.png"
    assert listed(statuses[3], NOW)
    assert not listed(statuses[5], NOW)


def test_the_m3u_names_each_channel_once_per_line_and_points_at_the_guide() -> None:
    """tvg-id, tvg-name, tvg-logo and group-title on one line; awkward names cannot break it."""
    awkward = status(SessionKind.RACE, Phase.LIVE, NOW, event='Grand "Prix", de\nMonaco & co')
    links = Links("http://gw.test/", token="tok en/0123456789abcdef")
    text = m3u(channels([awkward], NOW, url, links), links)
    lines = text.splitlines()
    assert lines[0] == ('#EXTM3U url-tvg="http://gw.test/export/guide.xml?token=tok%20en%2F0123456789abcdef"'
                        ' x-tvg-url="http://gw.test/export/guide.xml?token=tok%20en%2F0123456789abcdef"')
    assert lines[1].startswith('#EXTINF:-1 tvg-id="live-now" tvg-name="F1 live now" ')
    assert lines[2] == url("live-now")
    assert lines[3] == ('#EXTINF:-1 tvg-id="2026.monaco.race" '
                        "tvg-name=\"Grand 'Prix', de Monaco & co: Race\" "
                        'tvg-logo="http://gw.test/export/logos/2026.monaco.race.png" '
                        "group-title=\"Grand 'Prix', de Monaco & co\","
                        "Grand 'Prix'  de Monaco & co: Race")
    assert lines[4] == url("2026.monaco.race")
    assert len(lines) == 5


def test_the_guide_is_valid_xmltv_with_every_timed_session_as_a_programme(tmp_path: Path) -> None:
    """Valid against the XMLTV DTD; programmes on "live now" and on their own channels; times
    in XMLTV's format; the cancelled and the untimed sessions are not programmes."""
    statuses = [
        status(SessionKind.PRACTICE_1, Phase.ENDED, NOW - timedelta(days=1),
               event="Monaco <Grand> Prix & \x01friends"),
        status(SessionKind.PRACTICE_2, Phase.CANCELLED, NOW + timedelta(hours=1)),
        status(SessionKind.RACE, Phase.LIVE, NOW),
        status(SessionKind.SPRINT, Phase.SCHEDULED, None),
    ]
    found = channels(statuses, NOW, url, Links("http://gw.test"))
    text = xmltv(found, statuses, NOW)
    assert_valid_xmltv(text, tmp_path)
    root = ET.fromstring(text)  # noqa: S314 - our own output
    assert [c.get("id") for c in root.iter("channel")] == ["live-now", "2026.monaco.race"]
    assert root.find("channel/icon") is not None
    programmes = [(p.get("channel"), p.findtext("title"), p.get("start"), p.get("stop"))
                  for p in root.iter("programme")]
    assert programmes == [
        ("live-now", "Practice 1", "20260605120000 +0000", "20260605130000 +0000"),
        ("live-now", "Race", "20260606120000 +0000", "20260606140000 +0000"),
        ("2026.monaco.race", "Race", "20260606120000 +0000", "20260606140000 +0000"),
    ]
    race = root.findall("programme")[1]
    assert race.findtext("sub-title") == "Monaco Grand Prix"
    assert race.findtext("desc") == ("Race of the Monaco Grand Prix (round 8 of 2026) at "
                                     "Circuit de Monaco, Monaco.")
    assert "Sports" in [c.text for c in race.iter("category")]
    assert root.findall("programme")[0].findtext("sub-title") == "Monaco <Grand> Prix & friends"


def test_xmltv_times_are_utc_with_an_offset() -> None:
    """XMLTV's ``YYYYMMDDhhmmss +0000``, whatever the zone of the time given."""
    paris = datetime(2026, 6, 7, 15, 0, tzinfo=UTC).astimezone(
        datetime(2026, 6, 7, tzinfo=UTC).astimezone().tzinfo)
    assert xmltv_time(paris) == "20260607150000 +0000"


def test_logos_label_the_kind_of_session() -> None:
    """LIVE for "live now", the kind's short name for a session, F1 for anything else."""
    assert logo_label("live-now") == "LIVE"
    assert logo_label("2026.monaco.race") == "R"
    assert logo_label("2026.bahrain.testing-2") == "T"
    assert logo_label("2026.monaco.practice-1") == "FP1"
    assert logo_label("2026.monaco.exhibition") == "F1"
    svg = logo_svg("2026.monaco.qualifying")
    assert svg.startswith("<svg ")
    assert ">Q</text>" in svg
    ET.fromstring(svg)  # noqa: S314 - our own output; well-formed


def test_png_logos_decode_as_pictures_of_their_size(tmp_path: Path) -> None:
    """The PNG logo (what Kodi and Jellyfin show) is a real picture: ffprobe reads it."""
    for channel in ("live-now", "2026.monaco.sprint-qualifying", "2026.monaco.exhibition"):
        path = tmp_path / f"{channel}.png"
        path.write_bytes(logo_png(channel))
        probe = subprocess.run(["ffprobe", "-v", "error", "-of", "json", "-show_entries",
                                "stream=codec_name,width,height", str(path)],
                               capture_output=True, text=True, timeout=30, check=True)
        assert json.loads(probe.stdout)["streams"] == [
            {"codec_name": "png", "width": LOGO_SIZE, "height": LOGO_SIZE}]
