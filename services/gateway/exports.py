"""The IPTV exports of channels: the channel list (M3U, ``/export/channels.m3u``), the programme
guide (XMLTV, ``/export/guide.xml``) and the channels' logos. Pure: no web framework here.

Jellyfin, Kodi (IPTV Simple), Plex and Threadfin load the list once and keep its URLs, so a
channel's id is stable (the session key; :data:`~shared.channels.LIVE_NOW` for the channel
that follows whichever session is live) and its URL does not expire (``shared/channels.py``).
Both documents carry only the calendar, channel URLs and the gateway's own addresses: nothing
upstream.
"""

from __future__ import annotations

import functools
import re
import struct
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final
from urllib.parse import quote

from shared.calendar import DEFAULT_DURATIONS
from shared.channels import LIVE_NOW
from shared.sessions import Phase, Session, SessionKind, SessionStatus

#: Sessions that start within this long get a channel of their own (with the live ones): a
#: player that loads the list before a race weekend has all of its sessions.
UPCOMING_WINDOW: Final = timedelta(days=7)
GUIDE_PATH: Final = "/export/guide.xml"
LOGO_PATH: Final = "/export/logos"
LIVE_NOW_NAME: Final = "F1 live now"
GROUP: Final = "Formula 1"
_SHORT: Final = {
    SessionKind.PRACTICE_1: "FP1", SessionKind.PRACTICE_2: "FP2", SessionKind.PRACTICE_3: "FP3",
    SessionKind.SPRINT_QUALIFYING: "SQ", SessionKind.SPRINT: "S", SessionKind.QUALIFYING: "Q",
    SessionKind.RACE: "R", SessionKind.TESTING: "T",
}
_SHORT_BY_TOKEN: Final = {kind.value: short for kind, short in _SHORT.items()}
#: Characters XML 1.0 does not allow (a calendar name with one would make the guide unreadable).
_NOT_XML: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class Links:
    """The gateway's addresses as a player reached them, with the gateway's token when it has
    one (a player sends nothing else: it must be in the URL)."""

    gateway: str
    token: str | None = None

    def url(self, path: str) -> str:
        query = f"?token={quote(self.token, safe='')}" if self.token else ""
        return f"{self.gateway.rstrip('/')}{path}{query}"

    def logo(self, channel: str) -> str:
        # logos are public (they show a session kind, nothing else): no token in their URL.
        # PNG: Kodi and some Jellyfin clients show no SVG.
        return f"{self.gateway.rstrip('/')}{LOGO_PATH}/{channel}.png"


@dataclass(frozen=True)
class Channel:
    """One channel of the exports: ``id`` is the M3U ``tvg-id`` and the XMLTV channel id."""

    id: str
    name: str
    group: str
    url: str
    logo: str


def listed(status: SessionStatus, now: datetime) -> bool:
    """Whether a session gets a channel in the exports: live, or about to be (upcoming, or
    scheduled to start within :data:`UPCOMING_WINDOW`)."""
    if status.phase in (Phase.LIVE, Phase.UPCOMING):
        return True
    start = status.session.start
    return (status.phase in (Phase.SCHEDULED, Phase.RESCHEDULED) and start is not None
            and now <= start <= now + UPCOMING_WINDOW)


def session_title(session: Session) -> str:
    return f"{session.event}: {session.name}"


def channels(statuses: Iterable[SessionStatus], now: datetime,
             channel_url: Callable[[str], str], links: Links) -> list[Channel]:
    """The channels of the exports: "live now" first, then each listed session by start."""
    found = [Channel(id=LIVE_NOW, name=LIVE_NOW_NAME, group=GROUP,
                     url=channel_url(LIVE_NOW), logo=links.logo(LIVE_NOW))]
    for status in statuses:
        if listed(status, now):
            key = status.session.key
            found.append(Channel(id=key, name=session_title(status.session),
                                 group=status.session.event, url=channel_url(key),
                                 logo=links.logo(key)))
    return found


def _attr(value: str) -> str:
    """A value fit for an ``#EXTINF`` attribute: one line, no double quote."""
    return " ".join(value.replace('"', "'").split())


def m3u(found: Iterable[Channel], links: Links) -> str:
    """The channel list in the extended M3U format IPTV players read, pointing at the guide."""
    guide = links.url(GUIDE_PATH)
    lines = [f'#EXTM3U url-tvg="{_attr(guide)}" x-tvg-url="{_attr(guide)}"']
    for channel in found:
        name = _attr(channel.name).replace(",", " ")
        lines.append(f'#EXTINF:-1 tvg-id="{_attr(channel.id)}" tvg-name="{_attr(channel.name)}" '
                     f'tvg-logo="{_attr(channel.logo)}" group-title="{_attr(channel.group)}",{name}')
        lines.append(channel.url)
    return "\n".join(lines) + "\n"


def xmltv_time(value: datetime) -> str:
    """A time as XMLTV writes it: ``20260607130000 +0000``."""
    return value.astimezone(UTC).strftime("%Y%m%d%H%M%S +0000")


def _text(value: str) -> str:
    return " ".join(_NOT_XML.sub("", value).split())


def _sub(parent: ET.Element, tag: str, text: str, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    element.text = _text(text)
    return element


def expected_end(session: Session) -> datetime | None:
    if session.start is None:
        return None
    return session.end or session.start + DEFAULT_DURATIONS[session.kind]


def _description(session: Session) -> str:
    place = ", ".join(p for p in (session.circuit, session.country) if p)
    where = f" at {place}" if place else ""
    return f"{session.name} of the {session.event} (round {session.round} of {session.season}){where}."


def _programme(root: ET.Element, channel: str, session: Session, start: datetime,
               end: datetime) -> None:
    element = ET.SubElement(root, "programme", {"start": xmltv_time(start),
                                                "stop": xmltv_time(end), "channel": channel})
    _sub(element, "title", session.name, lang="en")
    _sub(element, "sub-title", session.event, lang="en")
    _sub(element, "desc", _description(session), lang="en")
    for category in ("Sports", "Motorsport", GROUP, session.name):
        _sub(element, "category", category, lang="en")
    _sub(element, "episode-num", f"{session.season} round {session.round} {session.name}",
         system="onscreen")


def xmltv(found: Iterable[Channel], statuses: Iterable[SessionStatus], now: datetime) -> str:
    """The programme guide (XMLTV, valid against its DTD): the channels, and every session with
    a time that is not cancelled as a programme on "live now" and on its own channel, when it
    has one. Times are UTC; a session without an end lasts its kind's expected duration."""
    found = list(found)
    ids = {c.id for c in found}
    root = ET.Element("tv", {"date": xmltv_time(now), "generator-info-name": "Slipstream",
                             "source-info-name": "Slipstream"})
    for channel in found:
        element = ET.SubElement(root, "channel", {"id": channel.id})
        _sub(element, "display-name", channel.name, lang="en")
        ET.SubElement(element, "icon", {"src": channel.logo})
    timed = [(s.session, s.session.start, expected_end(s.session)) for s in statuses
             if s.phase is not Phase.CANCELLED]
    for session, start, end in timed:
        if start is not None and end is not None:
            _programme(root, LIVE_NOW, session, start, end)
    for session, start, end in timed:
        if start is not None and end is not None and session.key in ids:
            _programme(root, session.key, session, start, end)
    ET.indent(root, space=" ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def logo_label(channel: str) -> str:
    """The short label on a channel's logo: ``LIVE``, or the session kind (``FP1``, ``Q``, ``R``)."""
    if channel == LIVE_NOW:
        return "LIVE"
    token = channel.rpartition(".")[2]
    # a kind that occurs more than once in an event is numbered: testing-1, testing-2
    for kind in (token, re.sub(r"-\d+$", "", token)):
        if kind in _SHORT_BY_TOKEN:
            return _SHORT_BY_TOKEN[kind]
    return "F1"


def logo_svg(channel: str) -> str:
    """A channel's logo: Slipstream's mark with the channel's label (see :func:`logo_label`)."""
    label = logo_label(channel)
    size = 150 if len(label) <= 2 else 110
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 512 512" width="512" height="512">'
        '<rect width="512" height="512" rx="96" fill="#e10600"/>'
        '<path d="M96 200h150l120-140H216z" fill="#fff"/>'
        f'<text x="256" y="420" font-family="DejaVu Sans,Arial,sans-serif" font-weight="bold" '
        f'font-size="{size}" text-anchor="middle" fill="#fff">{label}</text></svg>'
    )


#: A 5x7 pixel font of the characters logo labels use.
_GLYPHS: Final = {
    "L": "10000 10000 10000 10000 10000 10000 11111",
    "I": "01110 00100 00100 00100 00100 00100 01110",
    "V": "10001 10001 10001 10001 10001 01010 00100",
    "E": "11111 10000 10000 11110 10000 10000 11111",
    "F": "11111 10000 10000 11110 10000 10000 10000",
    "P": "11110 10001 10001 11110 10000 10000 10000",
    "S": "01111 10000 10000 01110 00001 00001 11110",
    "Q": "01110 10001 10001 10001 10101 10010 01101",
    "R": "11110 10001 10001 11110 10100 10010 10001",
    "T": "11111 00100 00100 00100 00100 00100 00100",
    "1": "00100 01100 00100 00100 00100 00100 01110",
    "2": "01110 10001 00001 00010 00100 01000 11111",
    "3": "11110 00001 00001 01110 00001 00001 11110",
}
LOGO_SIZE: Final = 256
_RED: Final = b"\xe1\x06\x00"
_WHITE: Final = b"\xff\xff\xff"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.cache
def logo_png(channel: str) -> bytes:
    """A channel's logo as a PNG (what every player shows): its label in white on red."""
    label = [c for c in logo_label(channel) if c in _GLYPHS]
    units = 6 * len(label) - 1  # 5 columns a glyph, 1 between glyphs
    scale = min(16, (LOGO_SIZE - 48) // max(units, 1))
    left = (LOGO_SIZE - units * scale) // 2
    top = (LOGO_SIZE - 7 * scale) // 2
    rows = []
    for y in range(LOGO_SIZE):
        row = bytearray(_RED * LOGO_SIZE)
        gy = (y - top) // scale
        if 0 <= gy < 7 and y >= top:
            for i, char in enumerate(label):
                bits = _GLYPHS[char].split()[gy]
                for gx, bit in enumerate(bits):
                    if bit == "1":
                        x0 = left + (6 * i + gx) * scale
                        row[3 * x0:3 * (x0 + scale)] = _WHITE * scale
        rows.append(b"\x00" + bytes(row))  # filter type 0 (none) for every row
    header = struct.pack(">IIBBBBB", LOGO_SIZE, LOGO_SIZE, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + _chunk(b"IEND", b""))
